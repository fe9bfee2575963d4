// Frames as the server writes them: JSON in text frames, msgpack maps in binary frames,
// and the library's own frames beside the room's messages (trio_rooms/_wire.py).

import { Packr } from "msgpackr";

import { InvalidMessageError, ServerError } from "./errors.js";

/** `"json"` (text frames) or `"msgpack"` (binary frames, `?format=msgpack`). */
export type WireFormat = "json" | "msgpack";

/** The first frame of a resumable connection: `{"$session": {id, token, resumed}}`. */
export interface SessionInfo {
  /** The session's id: the same after a resume. */
  readonly id: string;
  /** Resumes the session once, on a later connection (`?resume=<token>`). */
  readonly token: string;
  /** Whether this connection resumed a session (else the session is new). */
  readonly resumed: boolean;
}

/** What a frame holds once read: a candidate server message, or a library frame. */
export type Frame =
  | { readonly kind: "message"; readonly value: unknown }
  | { readonly kind: "session"; readonly session: SessionInfo }
  | { readonly kind: "error"; readonly error: ServerError };

// Plain maps both ways, as the server's msgpack codec reads and writes them: no records,
// no extensions; 64-bit integers as numbers, as JSON gives them. Bytes fields are bins
// both ways: msgpackr writes a Uint8Array as a bin and reads a bin as one (a Buffer,
// its subclass, in Node).
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/** `message` as a frame's payload. */
export function encode(format: WireFormat, message: unknown): string | Uint8Array {
  if (format === "json") return JSON.stringify(message);
  return packr.pack(forMsgpack(message));
}

/**
 * `value` as msgpack should see it, as JSON.stringify would: an optional field left
 * `undefined` is omitted. An integer past 32 bits becomes a BigInt, or msgpackr would
 * write it as a float, which the server's codec refuses for an `int` field.
 */
function forMsgpack(value: unknown): unknown {
  if (typeof value === "number") {
    const wide = Number.isSafeInteger(value) && (value > 0xffff_ffff || value < -0x8000_0000);
    return wide ? BigInt(value) : value;
  }
  if (Array.isArray(value)) return value.map(forMsgpack);
  if (!isPlainObject(value)) return value;
  const result: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) result[key] = forMsgpack(item);
  }
  return result;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * The frame `data` (a string for a text frame, bytes for a binary one) holds.
 *
 * A map with a `"type"` is a candidate message (the schema decides); a map without one
 * whose keys name a library frame is parsed strictly, as the server's `_wire.py` does.
 *
 * @throws InvalidMessageError Not of `format`'s kind of frame, not JSON or msgpack, not
 *   a map, or a malformed library frame.
 */
export function decode(format: WireFormat, data: string | Uint8Array): Frame {
  const content = load(format, data);
  const invalid = (message: string): InvalidMessageError => new InvalidMessageError(message, data);
  if (!isPlainObject(content)) throw invalid(`expected a map, got ${kind(content)}`);
  const keys = Object.keys(content);
  if ("type" in content || !keys.some(isLibraryKey)) return { kind: "message", value: content };
  if (keys.length !== 1) {
    throw invalid(`expected a library frame of one key, got the keys ${keys.sort().join(", ")}`);
  }
  if ("error" in content) {
    const text = content["error"];
    if (typeof text !== "string")
      throw invalid(`expected 'error' to be a string, got ${kind(text)}`);
    return { kind: "error", error: new ServerError(text) };
  }
  if ("$session" in content) {
    const session = sessionInfo(content["$session"]);
    if (typeof session === "string") throw invalid(`expected ${session}`);
    return { kind: "session", session };
  }
  throw invalid(`expected one of the library frames 'error', '$session', got '${keys[0]}'`);
}

function load(format: WireFormat, data: string | Uint8Array): unknown {
  if (format === "json") {
    if (typeof data !== "string") throw new InvalidMessageError("expected a text frame", data);
    try {
      return JSON.parse(data) as unknown;
    } catch (error) {
      throw new InvalidMessageError(`not JSON: ${String(error)}`, data, { cause: error });
    }
  }
  if (typeof data === "string") throw new InvalidMessageError("expected a binary frame", data);
  try {
    return packr.unpack(data) as unknown;
  } catch (error) {
    throw new InvalidMessageError(`not msgpack: ${String(error)}`, data, { cause: error });
  }
}

function isLibraryKey(key: string): boolean {
  return key === "error" || key.startsWith("$");
}

/** The session frame's value, or what it should have been. */
function sessionInfo(value: unknown): SessionInfo | string {
  if (!isPlainObject(value)) return `'$session' to be a map, got ${kind(value)}`;
  const keys = Object.keys(value).sort().join(", ");
  if (keys !== "id, resumed, token") {
    return `'$session' to have the keys id, resumed, token, got ${keys || "none"}`;
  }
  const { id, token, resumed } = value;
  if (typeof id !== "string") return `'$session.id' to be a string, got ${kind(id)}`;
  if (typeof token !== "string") return `'$session.token' to be a string, got ${kind(token)}`;
  if (typeof resumed !== "boolean") {
    return `'$session.resumed' to be a boolean, got ${kind(resumed)}`;
  }
  return { id, token, resumed };
}

function kind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}
