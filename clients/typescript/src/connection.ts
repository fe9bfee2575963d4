// One connection of a client, from its opening to its close: the bounded opening, the
// session frame, and what a close before it means (trio_rooms/client/_handshake.py).

import {
  ConnectError,
  ConnectionClosedError,
  ConnectTimeoutError,
  RoomClientError,
} from "./errors.js";
import { retries } from "./policy.js";
import {
  OPEN,
  type SocketCloseEvent,
  type SocketMessageEvent,
  type WebSocketConstructor,
  type WebSocketLike,
  connectionUrl,
  where,
} from "./socket.js";
import { type SessionInfo, type WireFormat, decode } from "./wire.js";

/** What every connection of one client is opened with. */
export interface ConnectionSettings {
  readonly url: URL;
  readonly format: WireFormat;
  readonly resume: boolean;
  readonly connectTimeout: number;
  readonly WebSocket: WebSocketConstructor;
}

/** What a connection reports; exactly one of `opened` and `failed` is called, `closed` only after `opened`. */
export interface ConnectionHandlers {
  /** Open: with `resume`, the server has named the session. */
  opened(session: SessionInfo | null): void;
  /** A frame after the session frame. */
  frame(data: string | Uint8Array): void;
  /** The open connection closed. */
  closed(code: number, reason: string): void;
  /**
   * It never opened: `ConnectError` (a reconnect retries it) or `ConnectionClosedError`
   * (a close code that is not retried, or no session frame first: the client ends).
   */
  failed(error: RoomClientError): void;
}

type State = "opening" | "awaiting session" | "open" | "ended";

/**
 * One WebSocket, opened with `?resume=<resume>` (none if `null`) and `&seen=<seen>`, the
 * server messages the session's client has received (none if `null`: not known).
 */
export class Connection {
  private state: State = "opening";
  private readonly socket: WebSocketLike;
  private readonly timer: ReturnType<typeof setTimeout>;

  constructor(
    private readonly settings: ConnectionSettings,
    resume: string | null,
    seen: number | null,
    private readonly handlers: ConnectionHandlers,
  ) {
    const url = connectionUrl(settings.url, settings.format, resume, seen);
    this.socket = new settings.WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.timer = setTimeout(() => this.timedOut(), settings.connectTimeout);
    this.socket.addEventListener("open", () => this.onOpen());
    this.socket.addEventListener("message", (event) => this.onMessage(event));
    this.socket.addEventListener("close", (event) => this.onClose(event));
    // An "error" event is always followed by "close", which says what happened.
    this.socket.addEventListener("error", () => undefined);
  }

  /** Whether frames can be written now. */
  get writable(): boolean {
    return this.state === "open" && this.socket.readyState === OPEN;
  }

  /** Write `frame`; only while `writable`. */
  send(frame: string | Uint8Array): void {
    this.socket.send(frame);
  }

  /** Start the close handshake; an open connection reports `closed` once it is done. */
  close(code: number, reason = ""): void {
    if (this.state !== "open") this.abandon();
    else this.socket.close(code, reason);
  }

  /** Drop the connection, reporting nothing more. */
  abandon(): void {
    this.end();
    this.socket.close();
  }

  private end(): void {
    this.state = "ended";
    clearTimeout(this.timer);
  }

  private fail(error: RoomClientError, close?: [number, string]): void {
    this.end();
    if (close !== undefined) this.socket.close(...close);
    else this.socket.close();
    this.handlers.failed(error);
  }

  private timedOut(): void {
    if (this.state === "ended") return;
    const step = this.state === "opening" ? "the WebSocket handshake" : "the session frame";
    const timeout = this.settings.connectTimeout;
    const message = `${step} to ${where(this.settings.url)} was not through within connectTimeout=${timeout} ms`;
    this.fail(new ConnectTimeoutError(message, timeout));
  }

  private onOpen(): void {
    if (this.state !== "opening") return;
    if (this.settings.resume) {
      this.state = "awaiting session";
      return;
    }
    this.opened(null);
  }

  private opened(session: SessionInfo | null): void {
    clearTimeout(this.timer);
    this.state = "open";
    this.handlers.opened(session);
  }

  private onMessage(event: SocketMessageEvent): void {
    const data = frameData(event.data);
    if (this.state === "open") {
      this.handlers.frame(data);
    } else if (this.state === "awaiting session") {
      const frame = decode(this.settings.format, data);
      if (frame.kind === "session") return this.opened(frame.session);
      const broken = frame.kind === "unreadable" || frame.kind === "malformed";
      const got = broken ? `: ${frame.error.message}` : `, got ${preview(data)}`;
      const reason = "expected the $session frame first";
      this.fail(new ConnectionClosedError(1002, `${reason}${got}`), [1002, reason]);
    }
  }

  private onClose(event: SocketCloseEvent): void {
    const { code, reason } = event;
    if (this.state === "open") {
      this.end();
      this.handlers.closed(code, reason);
      return;
    }
    if (this.state === "ended") return;
    const server = `the server at ${where(this.settings.url)}`;
    if (!retries(code)) {
      this.fail(new ConnectionClosedError(code, reason));
    } else if (this.state === "opening") {
      // A browser reports a refused connection and a refused handshake alike: 1006.
      this.fail(
        new ConnectError(`could not connect to ${where(this.settings.url)} (closed with ${code})`),
      );
    } else {
      this.fail(new ConnectError(`${server} closed with ${code} before the session frame`));
    }
  }
}

/** A frame's data as the client handles it: text, or the bytes of a binary frame. */
function frameData(data: unknown): string | Uint8Array {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data))
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`unexpected frame data: ${Object.prototype.toString.call(data)}`);
}

function preview(data: string | Uint8Array): string {
  return typeof data === "string" ? JSON.stringify(data.slice(0, 200)) : `${data.byteLength} bytes`;
}
