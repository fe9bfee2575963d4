// openRoomClient and the client it makes: typed by a room's schema, reconnecting and
// resuming its session as the Python client does (trio_rooms/client/).

import { z } from "zod";

import { Connection, type ConnectionSettings } from "./connection.js";
import {
  ClientClosedError,
  ClientQueueFullError,
  ConnectError,
  ConnectionClosedError,
  InvalidMessageError,
  type RoomClientError,
} from "./errors.js";
import {
  type CloseEvent,
  Listeners,
  type PresenceEntry,
  type Presences,
  type RoomClientEvents,
  type RoomClientListeners,
  callReporting,
} from "./events.js";
import { Inbox } from "./inbox.js";
import { type Pending, PendingRequests } from "./requests.js";
import {
  type ReconnectOptions,
  type ReconnectPolicy,
  reconnectDelay,
  reconnectPolicy,
  retries,
} from "./policy.js";
import { type WebSocketConstructor, parseUrl, webSocketClass } from "./socket.js";
import {
  type Frame,
  type SessionInfo,
  type WireFormat,
  type WirePresences,
  decode,
  encode,
} from "./wire.js";

/**
 * A room's contract: the module the schema export generates has it as `schema`.
 *
 * When the room's messages hold bytes, JSON carries them as base64 strings and msgpack
 * as bins (`Uint8Array`), so the module has a contract per format, each naming it:
 * `schema` (`format: "json"`) and `msgpackSchema` (`format: "msgpack"`). The client
 * then speaks the contract's format unless told otherwise, and refuses a mismatch.
 */
export interface RoomSchema {
  /** The frames this contract describes; absent: both formats (no bytes). */
  readonly format?: WireFormat;
  /** What clients send: a `z.discriminatedUnion("type", ...)`. */
  readonly client: z.ZodType;
  /** What the server sends. */
  readonly server: z.ZodType;
  /**
   * Each request's `type` and the schema of its reply (one of the server messages, or a
   * union of them); absent: the room takes no requests.
   */
  readonly replies?: { readonly [requestType: string]: z.ZodType };
  /**
   * The schema of the room's presence metadata (its `Presence(Meta)`); absent: the room
   * has no presence, and `$presence` frames are skipped.
   */
  readonly presence?: z.ZodType;
}

/** The client messages of `T`, as `send` takes them: fields with a default may be left out. */
export type ClientMessageOf<T extends RoomSchema> = z.input<T["client"]>;
/** The server messages of `T`. */
export type ServerMessageOf<T extends RoomSchema> = z.output<T["server"]>;
/** Each request `type` of `T` and its reply's type. */
export type RepliesOf<T extends RoomSchema> = T extends { readonly replies: infer R }
  ? { [K in keyof R]: R[K] extends z.ZodType ? z.output<R[K]> : never }
  : Record<never, never>;

/** The presence metadata of `T`; `never` for a room without presence. */
export type PresenceOf<T extends RoomSchema> = T extends { readonly presence: infer P }
  ? P extends z.ZodType
    ? z.output<P>
    : never
  : never;

/** The client `openRoomClient(url, schema)` makes, by the type of its schema. */
export type RoomClientOf<T extends RoomSchema> = RoomClient<
  ServerMessageOf<T>,
  ClientMessageOf<T>,
  RepliesOf<T>,
  PresenceOf<T>
>;

/** `request`'s options. */
export interface RequestOptions {
  /** Milliseconds to wait for the reply, from the call (default 10 000). */
  readonly timeout?: number | undefined;
}

/** `openRoomClient`'s options; all optional. `Meta`: the presence metadata's type. */
export interface RoomClientOptions<ServerMessage, Meta = unknown> {
  /**
   * `"json"` (text frames) or `"msgpack"` (binary frames); default: the schema's
   * `format`, else `"json"`.
   */
  readonly format?: WireFormat | undefined;
  /** Ask for a resumable session and resume it after reconnecting (default `true`). */
  readonly resume?: boolean | undefined;
  /** A token from an earlier client's `open` event, to resume its session at once. */
  readonly resumeToken?: string | undefined;
  /**
   * With `resumeToken`: the earlier client's `seen`, so that the server replays what it
   * missed since. Without it, nothing is replayed to this session, now or later.
   */
  readonly resumeSeen?: number | undefined;
  /** Backoff between reconnect attempts, and when to give up. */
  readonly reconnect?: ReconnectOptions | undefined;
  /** Messages that may wait for a connection while disconnected (default 1000). */
  readonly maxQueued?: number | undefined;
  /** Milliseconds each attempt may take to open, session frame included (default 10 000). */
  readonly connectTimeout?: number | undefined;
  /** Milliseconds `close()` waits for the server's answer (default 5000). */
  readonly closeTimeout?: number | undefined;
  /** The WebSocket class (default: the global one; in Node 20, pass `ws`'s). */
  readonly WebSocket?: WebSocketConstructor | undefined;
  /** The source of jitter, in [0, 1) (default `Math.random`). */
  readonly random?: (() => number) | undefined;
  /** A frame that is not a server message (default: `console.warn`); it is skipped. */
  readonly onInvalid?: ((error: InvalidMessageError) => void) | undefined;
  /** Each server message, instead of queueing it for `receive` and iteration. */
  readonly onMessage?: ((message: ServerMessage) => void) | undefined;
  /** Listeners added before the first connection (so its `open` event is seen). */
  readonly on?: RoomClientListeners<Meta> | undefined;
}

/** Where a client is: connected, reconnecting, closing with `close()`, or ended. */
export type RoomClientState = "open" | "reconnecting" | "closing" | "closed";

/**
 * A connection to one room that survives restarts. Made by `openRoomClient`.
 *
 * `Replies` maps each request `type` to its reply's type (`RepliesOf` the schema), `Meta`
 * is the room's presence metadata (`PresenceOf` the schema).
 */
export interface RoomClient<
  ServerMessage,
  ClientMessage,
  Replies = Record<never, never>,
  Meta = unknown,
> extends AsyncIterable<ServerMessage, undefined, undefined> {
  /** The server's id for this client's session; `null` without `resume`. */
  readonly sessionId: string | null;
  readonly state: RoomClientState;
  /**
   * The server messages this session's clients have received (library frames and
   * replies aside): what a resume reports, so that the server replays only the rest.
   * `null` without `resume`, or after `resumeToken` without `resumeSeen` (not known).
   */
  readonly seen: number | null;
  /**
   * The room's presences, key -> presences in join order, with the schema's `presence`
   * metadata (a live, read-only view). Filled once the session subscribes to presence
   * and kept up to date by the server's diffs, each also a `presence` event; after a
   * reconnect it holds the last state until the new connection's state replaces it.
   * Always empty for a schema without `presence`.
   */
  readonly presence: Presences<Meta>;
  /**
   * Queue `message` for the server; never blocks. Written at once while connected; while
   * reconnecting it waits, in order, for the next connection.
   *
   * @throws ClientQueueFullError `maxQueued` messages are waiting already.
   * @throws ClientClosedError The client was closed.
   * @throws ConnectionClosedError The client ended (see `receive`).
   * @throws TypeError `message` is not a client message of the schema, or is a request
   *   (send it with `request`).
   */
  send(message: Exclude<ClientMessage, { readonly type: keyof Replies }>): void;
  /**
   * Send the request `message` and wait for its reply, typed by the schema's `replies`:
   *
   * ```ts
   * const score = await client.request({ type: "getScore", player: "ann" }, { timeout: 5000 });
   * ```
   *
   * It is queued as `send` queues (while reconnecting it goes out on the next
   * connection) and sent once, never again. Requests may be answered out of order.
   *
   * @throws RequestError (rejects) The server refused it (`reason`): its handler refused
   *   or failed, or too many requests were in flight. `RequestLostError`: the connection
   *   was lost after it was handed over, before its reply came (it may have run).
   * @throws RequestTimeoutError (rejects) No reply within `timeout`; it is not sent if it
   *   was still waiting for a connection, else it may still run.
   * @throws InvalidMessageError (rejects) The reply is not the request's reply.
   * @throws TypeError, RangeError, ClientQueueFullError, ClientClosedError,
   *   ConnectionClosedError (rejects) As for `send`, or a `timeout` that is not > 0; the
   *   last two also when the client ends while the request waits.
   */
  request<K extends keyof Replies & string>(
    message: ClientMessage & { readonly type: K },
    options?: RequestOptions,
  ): Promise<Replies[K]>;
  /**
   * The next server message; reconnects happen underneath.
   *
   * @throws ConnectionClosedError (rejects) The server closed with a code that is not
   *   retried, or reconnecting gave up; `code` and `reason` say why.
   * @throws ClientClosedError (rejects) The client was closed with `close()`.
   */
  receive(): Promise<ServerMessage>;
  /** `receive()` until the client is closed or the server closes with 1000. */
  [Symbol.asyncIterator](): AsyncIterator<ServerMessage, undefined, undefined>;
  /** Call `listener` for each `name` event; returns what removes it. */
  on<E extends keyof RoomClientEvents<Meta>>(
    name: E,
    listener: (event: RoomClientEvents<Meta>[E]) => void,
  ): () => void;
  /**
   * Close with 1000 and wait for the server's answer, at most `closeTimeout`. What waits
   * for a connection is dropped. Resolves once the client has ended (at once if it has).
   */
  close(): Promise<void>;
}

/**
 * Connect to a room; resolves once connected (and, with `resume`, once the server has
 * named the session).
 *
 * ```ts
 * import { schema } from "./chat.schema.js"; // generated by python -m trio_rooms.schema
 * const client = await openRoomClient("ws://127.0.0.1:8000/rooms/lobby/websocket", schema);
 * client.send({ type: "sendChat", text: "hi" }); // typed: client messages only
 * for await (const message of client) {
 *   // typed: the server messages
 * }
 * ```
 *
 * After a drop or a close with 1001, 1006, 1012 or 1013 the client reconnects with
 * backoff and resumes its session; any other close ends it. The first connection is
 * not retried.
 *
 * @throws ConnectError (rejects) No connection could be opened (`ConnectTimeoutError`:
 *   not within `connectTimeout`).
 * @throws ConnectionClosedError (rejects) The server closed with a code that is not
 *   retried before the connection was open.
 * With bytes in the messages, pass the contract of the format:
 * `openRoomClient(url, msgpackSchema)` speaks msgpack, and bytes fields are
 * `Uint8Array` both ways; with `schema` they are base64 strings.
 *
 * @throws TypeError, RangeError (rejects) A bad URL or option, or a `format` that is
 *   not the schema's.
 */
export async function openRoomClient<T extends RoomSchema>(
  url: string,
  schema: T,
  options: RoomClientOptions<ServerMessageOf<T>, PresenceOf<T>> = {},
): Promise<RoomClientOf<T>> {
  const client = new Client<ServerMessageOf<T>, ClientMessageOf<T>, RepliesOf<T>, PresenceOf<T>>(
    url,
    schema,
    options,
  );
  await client.start();
  return client;
}

/** A frame waiting for a connection; a request's, with its request. */
interface Outgoing {
  readonly frame: string | Uint8Array;
  readonly request: Pending | null;
}

interface Retry {
  readonly code: number;
  readonly reason: string;
  readonly previousSessionId: string | null;
  attempts: number;
  lastError: RoomClientError | null;
  timer: ReturnType<typeof setTimeout> | null;
}

class Client<ServerMessage, ClientMessage, Replies, Meta> implements RoomClient<
  ServerMessage,
  ClientMessage,
  Replies,
  Meta
> {
  private _state: RoomClientState | "connecting" = "connecting";
  private connection: Connection | null = null;
  private session: SessionInfo | null = null;
  private retry: Retry | null = null;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  /** Encoded frames waiting for a connection, in order. */
  private readonly queue: Outgoing[] = [];
  private readonly requests = new PendingRequests();
  /** User frames received in this session, counted as the server counts them. */
  private _seen: number | null;
  private readonly inbox = new Inbox<ServerMessage>();
  private readonly listeners = new Listeners<Meta>();
  /** Each key's presences in join order; an array is replaced, never changed. */
  private readonly presences = new Map<string, readonly PresenceEntry<Meta>[]>();
  private readonly settings: ConnectionSettings;
  private readonly policy: ReconnectPolicy;
  private readonly maxQueued: number;
  private readonly closeTimeout: number;
  private outcome: Error | null = null;
  private readonly ended: Promise<void>;
  private resolveEnded: () => void = () => undefined;

  constructor(
    url: string,
    private readonly schema: RoomSchema,
    private readonly options: RoomClientOptions<ServerMessage, Meta>,
  ) {
    const connectTimeout = options.connectTimeout ?? 10_000;
    this.closeTimeout = options.closeTimeout ?? 5000;
    this.maxQueued = options.maxQueued ?? 1000;
    if (!(Number.isInteger(this.maxQueued) && this.maxQueued >= 1)) {
      throw new RangeError(`maxQueued must be an integer >= 1, got ${this.maxQueued}`);
    }
    for (const [name, timeout] of [
      ["connectTimeout", connectTimeout],
      ["closeTimeout", this.closeTimeout],
    ] as const) {
      if (!(timeout > 0)) throw new RangeError(`${name} must be > 0, got ${timeout}`);
    }
    this.policy = reconnectPolicy(options.reconnect);
    const format = options.format ?? schema.format ?? "json";
    if (schema.format !== undefined && schema.format !== format) {
      const own = format === "msgpack" ? "msgpackSchema" : "schema";
      throw new TypeError(
        `the schema describes ${schema.format} frames, not ${format}: pass the module's ${own}`,
      );
    }
    this.settings = {
      url: parseUrl(url),
      format,
      resume: options.resume ?? true,
      connectTimeout,
      WebSocket: webSocketClass(options.WebSocket),
    };
    const { resumeSeen } = options;
    if (resumeSeen !== undefined && !(Number.isSafeInteger(resumeSeen) && resumeSeen >= 0)) {
      throw new RangeError(`resumeSeen must be an integer >= 0, got ${resumeSeen}`);
    }
    if (!this.settings.resume) this._seen = null;
    else if (options.resumeToken === undefined) this._seen = 0;
    else this._seen = resumeSeen ?? null;
    for (const [name, listener] of Object.entries(options.on ?? {})) {
      if (listener !== undefined)
        this.listeners.add(name as keyof RoomClientEvents<Meta>, listener as () => void);
    }
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  get sessionId(): string | null {
    return this.session?.id ?? null;
  }

  get state(): RoomClientState {
    return this._state === "connecting" ? "reconnecting" : this._state;
  }

  get seen(): number | null {
    return this._seen;
  }

  get presence(): Presences<Meta> {
    return this.presences;
  }

  /** The first connection: resolves once open, rejects (and ends) if it fails. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.connect({
        opened: resolve,
        failed: (error) => {
          this.failed(error);
          reject(error);
        },
      });
    });
  }

  private connect(first: { opened(): void; failed(error: RoomClientError): void } | null): void {
    const resume = this.settings.resume
      ? (this.session?.token ?? this.options.resumeToken ?? "")
      : null;
    const seen = resume === null ? null : this._seen;
    const connection: Connection = new Connection(this.settings, resume, seen, {
      opened: (session) => {
        this.opened(session);
        first?.opened();
      },
      frame: (data) => this.frame(data),
      closed: (code, reason) => this.closed(code, reason),
      failed: (error) => (first !== null ? first.failed(error) : this.attemptFailed(error)),
    });
    this.connection = connection;
  }

  private opened(session: SessionInfo | null): void {
    if (session !== null) {
      if (!session.resumed) this._seen = 0; // a new session: a new count
      this.session = session;
    }
    this._state = "open";
    for (const outgoing of this.queue.splice(0)) this.write(outgoing);
    const retry = this.retry;
    this.retry = null;
    this.listeners.emit("open", { session, reconnected: retry !== null });
    if (retry !== null) {
      this.listeners.emit("reconnect", {
        code: retry.code,
        reason: retry.reason,
        attempts: retry.attempts,
        resumed: session?.resumed ?? false,
        sessionId: this.sessionId,
        previousSessionId: retry.previousSessionId,
        replayed: session?.replayed ?? null,
      });
    }
  }

  private closed(code: number, reason: string): void {
    this.connection = null;
    this.requests.lost();
    if (this._state === "closing") return this.end(code, reason, null);
    if (!retries(code)) return this.end(code, reason, new ConnectionClosedError(code, reason));
    this._state = "reconnecting";
    this.retry = {
      code,
      reason,
      previousSessionId: this.sessionId,
      attempts: 0,
      lastError: null,
      timer: null,
    };
    this.listeners.emit("disconnect", { code, reason });
    this.scheduleAttempt();
  }

  private scheduleAttempt(): void {
    const retry = this.retry;
    if (retry === null || this._state !== "reconnecting") return;
    const { maxAttempts } = this.policy;
    if (maxAttempts !== null && retry.attempts >= maxAttempts) {
      const reason = `gave up reconnecting after ${retry.attempts} attempts`;
      const error = new ConnectionClosedError(retry.code, reason, { cause: retry.lastError });
      return this.end(retry.code, reason, error);
    }
    retry.attempts += 1;
    const delay = reconnectDelay(this.policy, retry.attempts, this.options.random ?? Math.random);
    retry.timer = setTimeout(() => {
      retry.timer = null;
      try {
        this.connect(null);
      } catch (error) {
        // The WebSocket class refused the URL: no attempt can succeed.
        this.end(retry.code, "", error instanceof Error ? error : new Error(String(error)));
      }
    }, delay);
  }

  private attemptFailed(error: RoomClientError): void {
    this.connection = null;
    if (this._state !== "reconnecting") return;
    if (!(error instanceof ConnectError)) return this.failed(error);
    if (this.retry !== null) this.retry.lastError = error;
    this.scheduleAttempt();
  }

  /** A connection that could not open ends the client: with its close code, if it had one. */
  private failed(error: RoomClientError): void {
    if (error instanceof ConnectionClosedError) this.end(error.code, error.reason, error);
    else this.end(1006, "", error);
  }

  /**
   * A `$session` mid-connection: the server moved this session to another node (a
   * cluster's failover), and the move spent the old token; the new one resumes it.
   */
  private moved(session: SessionInfo, data: string | Uint8Array): void {
    const current = this.session;
    if (current === null || session.id !== current.id || !session.resumed) {
      return this.invalid(
        new InvalidMessageError("unexpected $session frame in the middle of a connection", data),
      );
    }
    this.session = session;
  }

  private frame(data: string | Uint8Array): void {
    const frame = decode(this.settings.format, data);
    switch (frame.kind) {
      case "session":
        return this.moved(frame.session, data);
      case "error":
        if (!this.listeners.emit("error", frame.error)) {
          console.warn(`trio-rooms-client: the server sent an error: ${frame.error.text}`);
        }
        return;
      case "resync":
        if (!this.listeners.emit("resync", { reason: frame.reason })) {
          console.warn(`trio-rooms-client: missed messages were not replayed: ${frame.reason}`);
        }
        return;
      case "reply":
        return this.requests.reply(frame.rid, frame.value, data);
      case "refused":
        return this.requests.refused(frame.rid, frame.reason);
      case "skipped":
        // Frames the server's delivery policy dropped: counted as received, so that a
        // resume's replay starts where the server's count is.
        if (this._seen !== null) this._seen += frame.count;
        return;
      case "presenceState":
      case "presenceDiff":
        return this.presenceFrame(frame, data);
      case "malformed":
        return this.invalid(frame.error);
      case "unreadable":
        this.count(); // the server sent it, and counted it
        return this.invalid(frame.error);
      case "message": {
        this.count();
        const parsed = this.schema.server.safeParse(frame.value);
        if (!parsed.success) {
          const message = `not a server message of the schema: ${z.prettifyError(parsed.error)}`;
          return this.invalid(new InvalidMessageError(message, data, { cause: parsed.error }));
        }
        const message = parsed.data as ServerMessage;
        if (this.options.onMessage !== undefined) callReporting(this.options.onMessage, message);
        else this.inbox.put(message);
      }
    }
  }

  /** Apply a `$presence` frame (not counted: a library frame), then report it. */
  private presenceFrame(
    frame: Extract<Frame, { kind: "presenceState" | "presenceDiff" }>,
    data: string | Uint8Array,
  ): void {
    const meta = this.schema.presence;
    if (meta === undefined) return; // the schema names no presence: skipped
    const decode = (wire: WirePresences): Map<string, PresenceEntry<Meta>[]> => {
      const decoded = new Map<string, PresenceEntry<Meta>[]>();
      for (const [key, items] of wire) {
        decoded.set(
          key,
          items.map(({ ref, meta: value }) => {
            const parsed = meta.safeParse(value);
            if (parsed.success) return { ref, meta: parsed.data as Meta };
            const text = `presence of ${JSON.stringify(key)}: not the schema's presence metadata`;
            throw new InvalidMessageError(`${text}: ${z.prettifyError(parsed.error)}`, data, {
              cause: parsed.error,
            });
          }),
        );
      }
      return decoded;
    };
    let event: RoomClientEvents<Meta>["presence"];
    try {
      event =
        frame.kind === "presenceState"
          ? this.resetPresence(decode(frame.state))
          : this.applyPresence(decode(frame.joins), decode(frame.leaves));
    } catch (error) {
      if (error instanceof InvalidMessageError) return this.invalid(error); // nothing applied
      throw error;
    }
    this.listeners.emit("presence", event);
  }

  /** The held presences become `state`; what differs. */
  private resetPresence(state: Presences<Meta>): RoomClientEvents<Meta>["presence"] {
    const held = new Map(this.presences);
    this.presences.clear();
    for (const [key, entries] of state) this.presences.set(key, entries);
    return { joins: minus(state, held), leaves: minus(held, state), reset: true };
  }

  /** Leaves by ref, then joins, as the server's reference client applies a diff. */
  private applyPresence(
    joins: Presences<Meta>,
    leaves: Presences<Meta>,
  ): RoomClientEvents<Meta>["presence"] {
    const left = new Map<string, PresenceEntry<Meta>[]>();
    for (const [key, entries] of leaves) {
      const held = this.presences.get(key) ?? [];
      const refs = new Set(entries.map((entry) => entry.ref));
      const gone = held.filter((entry) => refs.has(entry.ref)); // as they joined
      if (gone.length > 0) left.set(key, gone);
      const kept = held.filter((entry) => !refs.has(entry.ref));
      if (kept.length > 0) this.presences.set(key, kept);
      else this.presences.delete(key);
    }
    const joined = new Map<string, PresenceEntry<Meta>[]>();
    for (const [key, entries] of joins) {
      const held = this.presences.get(key) ?? [];
      const refs = new Set(held.map((entry) => entry.ref));
      const fresh = entries.filter((entry) => !refs.has(entry.ref));
      if (fresh.length === 0) continue;
      joined.set(key, fresh);
      this.presences.set(key, [...held, ...fresh]);
    }
    return { joins: joined, leaves: left, reset: false };
  }

  private count(): void {
    if (this._seen !== null) this._seen += 1;
  }

  private invalid(error: InvalidMessageError): void {
    if (this.options.onInvalid !== undefined) callReporting(this.options.onInvalid, error);
    else console.warn(`trio-rooms-client: skipped a frame: ${error.message}`);
  }

  /** The client ends: nothing more is sent, received or retried. */
  private end(code: number, reason: string, error: Error | null): void {
    if (this._state === "closed") return;
    this._state = "closed";
    this.outcome = error;
    if (this.retry?.timer != null) clearTimeout(this.retry.timer);
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.retry = null;
    this.connection?.abandon();
    this.connection = null;
    this.queue.length = 0;
    this.requests.end(error ?? new ClientClosedError());
    this.inbox.end(error ?? new ClientClosedError());
    const event: CloseEvent = { code, reason, error };
    this.listeners.emit("close", event);
    this.resolveEnded();
  }

  send(message: Exclude<ClientMessage, { readonly type: keyof Replies }>): void {
    this.checkRunning();
    const checked = this.checked(message);
    if (this.replyOf(checked.type) !== undefined) {
      throw new TypeError(`'${checked.type}' is a request: send it with request()`);
    }
    this.checkRoom();
    this.write({ frame: encode(this.settings.format, checked), request: null });
  }

  async request<K extends keyof Replies & string>(
    message: ClientMessage & { readonly type: K },
    options: RequestOptions = {},
  ): Promise<Replies[K]> {
    const timeout = options.timeout ?? 10_000;
    if (!(timeout > 0)) throw new RangeError(`timeout must be > 0, got ${timeout}`);
    this.checkRunning();
    const checked = this.checked(message);
    const reply = this.replyOf(checked.type);
    if (reply === undefined) {
      throw new TypeError(`'${checked.type}' is not a request of the schema: send it with send()`);
    }
    this.checkRoom();
    const { pending, outcome } = this.requests.open(checked.type, reply, timeout, (timedOut) => {
      // Not sent yet: it never will be.
      const index = this.queue.findIndex((outgoing) => outgoing.request === timedOut);
      if (index >= 0) this.queue.splice(index, 1);
    });
    const frame = encode(this.settings.format, { ...checked, $rid: pending.rid });
    this.write({ frame, request: pending });
    return outcome as Promise<Replies[K]>;
  }

  private checkRunning(): void {
    if (this._state === "closing") throw new ClientClosedError();
    if (this._state === "closed") throw this.outcome ?? new ClientClosedError();
  }

  /** `message` parsed by the schema: defaults filled in, as the server's codec would. */
  private checked(message: unknown): { readonly type: string } {
    const checked = this.schema.client.safeParse(message);
    if (!checked.success) {
      const text = `not a client message of the schema: ${z.prettifyError(checked.error)}`;
      throw new TypeError(text, { cause: checked.error });
    }
    // A discriminated union on "type" parses only objects with a string tag.
    return checked.data as { readonly type: string };
  }

  /** The schema of the reply to `requestType`; `undefined`: it is no request. */
  private replyOf(requestType: string): z.ZodType | undefined {
    const replies = this.schema.replies;
    return replies !== undefined && Object.hasOwn(replies, requestType)
      ? replies[requestType]
      : undefined;
  }

  /** Room for one more frame: there is a connection to write it to, or room in the queue. */
  private checkRoom(): void {
    if (!this.connection?.writable && this.queue.length >= this.maxQueued) {
      throw new ClientQueueFullError(this.maxQueued);
    }
  }

  private write(outgoing: Outgoing): void {
    if (this.connection?.writable) {
      this.connection.send(outgoing.frame);
      if (outgoing.request !== null) outgoing.request.written = true;
    } else {
      this.queue.push(outgoing);
    }
  }

  receive(): Promise<ServerMessage> {
    if (this.options.onMessage !== undefined) {
      return Promise.reject(new TypeError("messages go to options.onMessage: receive() gets none"));
    }
    return this.inbox.take();
  }

  [Symbol.asyncIterator](): AsyncIterator<ServerMessage, undefined, undefined> {
    return {
      next: async (): Promise<IteratorResult<ServerMessage, undefined>> => {
        try {
          return { done: false, value: await this.receive() };
        } catch (error) {
          const clean =
            error instanceof ClientClosedError ||
            (error instanceof ConnectionClosedError && error.code === 1000);
          if (clean) return { done: true, value: undefined };
          throw error;
        }
      },
    };
  }

  on<E extends keyof RoomClientEvents<Meta>>(
    name: E,
    listener: (event: RoomClientEvents<Meta>[E]) => void,
  ): () => void {
    return this.listeners.add(name, listener);
  }

  close(): Promise<void> {
    if (this._state === "closed" || this._state === "closing") return this.ended;
    const connection = this.connection;
    if (this._state === "open" && connection?.writable) {
      this._state = "closing";
      connection.close(1000);
      // The server may never answer: the socket is dropped then.
      this.closeTimer = setTimeout(() => this.end(1000, "", null), this.closeTimeout);
    } else {
      this.end(1000, "", null);
    }
    return this.ended;
  }
}

/** The presences of `these` whose ref `those` lacks, by key. */
function minus<Meta>(these: Presences<Meta>, those: Presences<Meta>): Presences<Meta> {
  const refs = new Set<string>();
  for (const entries of those.values()) for (const entry of entries) refs.add(entry.ref);
  const result = new Map<string, readonly PresenceEntry<Meta>[]>();
  for (const [key, entries] of these) {
    const kept = entries.filter((entry) => !refs.has(entry.ref));
    if (kept.length > 0) result.set(key, kept);
  }
  return result;
}
