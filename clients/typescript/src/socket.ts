// The WebSocket the client drives: the browser's global one, or one handed in (the `ws`
// package in Node 20, which has no global WebSocket). Only what both offer is used.

import type { WireFormat } from "./wire.js";

/** A message event: `data` is a string (text frame) or an `ArrayBuffer` (binary frame). */
export interface SocketMessageEvent {
  readonly data: unknown;
}

/** A close event. */
export interface SocketCloseEvent {
  readonly code: number;
  readonly reason: string;
}

/** The part of the WebSocket API the client uses; the browser's and `ws`'s both have it. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "error", listener: () => void): void;
  addEventListener(type: "message", listener: (event: SocketMessageEvent) => void): void;
  addEventListener(type: "close", listener: (event: SocketCloseEvent) => void): void;
}

/** A WebSocket class: `WebSocket` in browsers, `ws`'s `WebSocket` in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `readyState` of an open socket. */
export const OPEN = 1;

/** The WebSocket class to use: `given`, else the global one. */
export function webSocketClass(given: WebSocketConstructor | undefined): WebSocketConstructor {
  if (given !== undefined) return given;
  const global: unknown = (globalThis as { WebSocket?: unknown }).WebSocket;
  if (typeof global !== "function") {
    throw new TypeError(
      "there is no global WebSocket (Node 20 has none): pass options.WebSocket, " +
        "for example the ws package's WebSocket",
    );
  }
  return global as WebSocketConstructor;
}

/**
 * `url` checked: a `ws://` or `wss://` URL.
 *
 * @throws TypeError Any other URL.
 */
export function parseUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new TypeError(`expected a ws:// or wss:// URL, got ${JSON.stringify(url)}`, {
      cause: error,
    });
  }
  if ((parsed.protocol !== "ws:" && parsed.protocol !== "wss:") || parsed.host === "") {
    throw new TypeError(`expected a ws:// or wss:// URL with a host, got ${JSON.stringify(url)}`);
  }
  return parsed;
}

/** `url` with `format`, `resume` and `seen` (with `resume` only) in its query, the rest kept. */
export function connectionUrl(
  url: URL,
  format: WireFormat,
  resume: string | null,
  seen: number | null = null,
): string {
  const target = new URL(url);
  for (const key of ["format", "resume", "seen"]) target.searchParams.delete(key);
  if (format !== "json") target.searchParams.set("format", format);
  if (resume !== null) {
    target.searchParams.set("resume", resume);
    if (seen !== null) target.searchParams.set("seen", String(seen));
  }
  return target.href;
}

/** `host:port` of `url`, for messages. */
export function where(url: URL): string {
  return url.host;
}
