// Frames as the server writes them: JSON in text frames, msgpack maps in binary frames,
// and the library's own frames beside the room's messages (trio_rooms/_wire.py).

import { Packr } from "msgpackr";

import { InvalidMessageError, ServerError } from "./errors.js";

/** `"json"` (text frames) or `"msgpack"` (binary frames, `?format=msgpack`). */
export type WireFormat = "json" | "msgpack";

/** The first frame of a resumable connection: `{"$session": {id, token, resumed, replayed?}}`. */
export interface SessionInfo {
  /** The session's id: the same after a resume. */
  readonly id: string;
  /** Resumes the session once, on a later connection (`?resume=<token>`). */
  readonly token: string;
  /** Whether this connection resumed a session (else the session is new). */
  readonly resumed: boolean;
  /**
   * How many missed messages the server replays now, before any new one; `null` when it
   * keeps no replay log for the room (or was not told what the client had seen).
   */
  readonly replayed: number | null;
}

/** One presence of a key as the server sends it; `meta` is checked by the schema later. */
export interface WirePresence {
  readonly ref: string;
  readonly meta: unknown;
}

/** Presences by key, each key's in the order they joined (a `Map`: keys are the app's). */
export type WirePresences = ReadonlyMap<string, readonly WirePresence[]>;

/** The largest request id: JavaScript's largest safe integer, as the server's `MAX_RID`. */
export const MAX_RID = Number.MAX_SAFE_INTEGER;

/**
 * What a frame holds once read. The server counts the user frames it sends a session
 * (`message`, and `unreadable` ones: a frame it sent that is no map, say); a resume says
 * how many arrived. Library frames and replies are not counted.
 */
export type Frame =
  | { readonly kind: "message"; readonly value: unknown }
  | { readonly kind: "reply"; readonly rid: number; readonly value: unknown }
  | { readonly kind: "session"; readonly session: SessionInfo }
  | { readonly kind: "resync"; readonly reason: string }
  | { readonly kind: "refused"; readonly rid: number; readonly reason: string }
  /** `{"$skipped": n}`: n user frames for this client that a delivery policy dropped. */
  | { readonly kind: "skipped"; readonly count: number }
  /** `{"$presence": {"state": ...}}`: every presence of the room (a reset). */
  | { readonly kind: "presenceState"; readonly state: WirePresences }
  /** `{"$presence": {"joins": ..., "leaves": ...}}`: apply the leaves by ref, then the joins. */
  | {
      readonly kind: "presenceDiff";
      readonly joins: WirePresences;
      readonly leaves: WirePresences;
    }
  | { readonly kind: "error"; readonly error: ServerError }
  /** A user frame that is not JSON or msgpack, or not a map: counted, then skipped. */
  | { readonly kind: "unreadable"; readonly error: InvalidMessageError }
  /** A malformed library frame, or a reply whose `$rid` is no request id: not counted. */
  | { readonly kind: "malformed"; readonly error: InvalidMessageError };

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
 * A map with a `"$rid"` is a reply (the key taken off its message); else a map with a
 * `"type"` is a candidate message (the schema decides); a map without one whose keys
 * name a library frame is parsed strictly, as the server's `_wire.py` does.
 */
export function decode(format: WireFormat, data: string | Uint8Array): Frame {
  let content: unknown;
  try {
    content = load(format, data);
  } catch (error) {
    return { kind: "unreadable", error: error as InvalidMessageError };
  }
  if (!isPlainObject(content)) {
    const error = new InvalidMessageError(`expected a map, got ${kind(content)}`, data);
    return { kind: "unreadable", error };
  }
  const malformed = (message: string): Frame => ({
    kind: "malformed",
    error: new InvalidMessageError(message, data),
  });
  if ("$rid" in content) {
    const { $rid: rid, ...value } = content;
    if (!isRid(rid)) return malformed(`expected '$rid' to be a request id, got ${kind(rid)}`);
    return { kind: "reply", rid, value };
  }
  const keys = Object.keys(content);
  if ("type" in content || !keys.some(isLibraryKey)) return { kind: "message", value: content };
  if (keys.length !== 1) {
    return malformed(`expected a library frame of one key, got the keys ${keys.sort().join(", ")}`);
  }
  const [key] = keys as [string];
  const parse = Object.hasOwn(PARSERS, key) ? PARSERS[key] : undefined;
  if (parse === undefined) {
    return malformed(
      `expected one of the library frames ${Object.keys(PARSERS).join(", ")}, got '${key}'`,
    );
  }
  const frame = parse(content[key]);
  return typeof frame === "string" ? malformed(`expected ${frame}`) : frame;
}

/** Each library frame's parser: the frame, or what its value should have been. */
const PARSERS: Readonly<Record<string, (value: unknown) => Frame | string>> = {
  error: (text) =>
    typeof text === "string"
      ? { kind: "error", error: new ServerError(text) }
      : `'error' to be a string, got ${kind(text)}`,
  $session: (value) => {
    const session = sessionInfo(value);
    return typeof session === "string" ? session : { kind: "session", session };
  },
  $resync: (value) => {
    const fields = exactly(value, "$resync", ["reason"]);
    if (typeof fields === "string") return fields;
    const { reason } = fields;
    if (typeof reason !== "string") return `'$resync.reason' to be a string, got ${kind(reason)}`;
    return { kind: "resync", reason };
  },
  $error: (value) => {
    const fields = exactly(value, "$error", ["reason", "rid"]);
    if (typeof fields === "string") return fields;
    const { rid, reason } = fields;
    if (!isRid(rid)) return `'$error.rid' to be a request id, got ${kind(rid)}`;
    if (typeof reason !== "string") return `'$error.reason' to be a string, got ${kind(reason)}`;
    return { kind: "refused", rid, reason };
  },
  $skipped: (value) =>
    typeof value === "number" && Number.isSafeInteger(value) && value >= 1
      ? { kind: "skipped", count: value }
      : `'$skipped' to be a positive count, got ${kind(value)}`,
  $presence: presenceFrame,
};

/** The `$presence` frame's value, or what it should have been. */
function presenceFrame(value: unknown): Frame | string {
  if (!isPlainObject(value)) return `'$presence' to be a map, got ${kind(value)}`;
  const keys = Object.keys(value).sort().join(", ");
  if (keys === "state") {
    const state = presences("state", value["state"]);
    return typeof state === "string" ? state : { kind: "presenceState", state };
  }
  if (keys === "joins, leaves") {
    const joins = presences("joins", value["joins"]);
    if (typeof joins === "string") return joins;
    const leaves = presences("leaves", value["leaves"]);
    return typeof leaves === "string" ? leaves : { kind: "presenceDiff", joins, leaves };
  }
  return `'$presence' to have the key state, or the keys joins, leaves, got ${keys || "none"}`;
}

/** One map of presences by key, or what it should have been. */
function presences(name: string, value: unknown): WirePresences | string {
  const where = `'$presence.${name}'`;
  if (!isPlainObject(value)) return `${where} to be a map of keys to lists, got ${kind(value)}`;
  const result = new Map<string, WirePresence[]>();
  for (const [key, items] of Object.entries(value)) {
    if (!Array.isArray(items))
      return `${where}[${JSON.stringify(key)}] to be a list, got ${kind(items)}`;
    const parsed: WirePresence[] = [];
    for (const item of items as unknown[]) {
      const fields = exactly(item, `$presence.${name}[${JSON.stringify(key)}]`, ["meta", "ref"]);
      if (typeof fields === "string") return fields;
      const { ref, meta } = fields;
      if (typeof ref !== "string") {
        return `${where}[${JSON.stringify(key)}] refs to be strings, got ${kind(ref)}`;
      }
      parsed.push({ ref, meta });
    }
    result.set(key, parsed);
  }
  return result;
}

/** `value` if it is a map of exactly `keys` (sorted), else what it should have been. */
function exactly(
  value: unknown,
  name: string,
  keys: readonly string[],
): Record<string, unknown> | string {
  if (!isPlainObject(value)) return `'${name}' to be a map, got ${kind(value)}`;
  const got = Object.keys(value).sort().join(", ");
  if (got !== keys.join(", "))
    return `'${name}' to have the keys ${keys.join(", ")}, got ${got || "none"}`;
  return value;
}

function isRid(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
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
  const keys = Object.keys(value)
    .filter((key) => key !== "replayed")
    .sort()
    .join(", ");
  if (keys !== "id, resumed, token") {
    const all = Object.keys(value).sort().join(", ");
    return `'$session' to have the keys id, resumed, token (and replayed), got ${all || "none"}`;
  }
  const { id, token, resumed, replayed } = value;
  if (typeof id !== "string") return `'$session.id' to be a string, got ${kind(id)}`;
  if (typeof token !== "string") return `'$session.token' to be a string, got ${kind(token)}`;
  if (typeof resumed !== "boolean") {
    return `'$session.resumed' to be a boolean, got ${kind(resumed)}`;
  }
  if (replayed !== undefined && !(Number.isSafeInteger(replayed) && (replayed as number) >= 0)) {
    return `'$session.replayed' to be a count, got ${kind(replayed)}`;
  }
  return { id, token, resumed, replayed: replayed === undefined ? null : (replayed as number) };
}

function kind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}
