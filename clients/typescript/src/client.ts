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
  type RoomClientEvents,
  type RoomClientListeners,
  callReporting,
} from "./events.js";
import { Inbox } from "./inbox.js";
import {
  type ReconnectOptions,
  type ReconnectPolicy,
  reconnectDelay,
  reconnectPolicy,
  retries,
} from "./policy.js";
import { type WebSocketConstructor, parseUrl, webSocketClass } from "./socket.js";
import { type SessionInfo, type WireFormat, decode, encode } from "./wire.js";

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
}

/** The client messages of `T`, as `send` takes them: fields with a default may be left out. */
export type ClientMessageOf<T extends RoomSchema> = z.input<T["client"]>;
/** The server messages of `T`. */
export type ServerMessageOf<T extends RoomSchema> = z.output<T["server"]>;

/** `openRoomClient`'s options; all optional. */
export interface RoomClientOptions<ServerMessage> {
  /**
   * `"json"` (text frames) or `"msgpack"` (binary frames); default: the schema's
   * `format`, else `"json"`.
   */
  readonly format?: WireFormat | undefined;
  /** Ask for a resumable session and resume it after reconnecting (default `true`). */
  readonly resume?: boolean | undefined;
  /** A token from an earlier client's `open` event, to resume its session at once. */
  readonly resumeToken?: string | undefined;
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
  readonly on?: RoomClientListeners | undefined;
}

/** Where a client is: connected, reconnecting, closing with `close()`, or ended. */
export type RoomClientState = "open" | "reconnecting" | "closing" | "closed";

/** A connection to one room that survives restarts. Made by `openRoomClient`. */
export interface RoomClient<ServerMessage, ClientMessage> extends AsyncIterable<
  ServerMessage,
  undefined,
  undefined
> {
  /** The server's id for this client's session; `null` without `resume`. */
  readonly sessionId: string | null;
  readonly state: RoomClientState;
  /**
   * Queue `message` for the server; never blocks. Written at once while connected; while
   * reconnecting it waits, in order, for the next connection.
   *
   * @throws ClientQueueFullError `maxQueued` messages are waiting already.
   * @throws ClientClosedError The client was closed.
   * @throws ConnectionClosedError The client ended (see `receive`).
   * @throws TypeError `message` is not a client message of the schema.
   */
  send(message: ClientMessage): void;
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
  on<E extends keyof RoomClientEvents>(
    name: E,
    listener: (event: RoomClientEvents[E]) => void,
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
  options: RoomClientOptions<ServerMessageOf<T>> = {},
): Promise<RoomClient<ServerMessageOf<T>, ClientMessageOf<T>>> {
  const client = new Client<ServerMessageOf<T>, ClientMessageOf<T>>(url, schema, options);
  await client.start();
  return client;
}

interface Retry {
  readonly code: number;
  readonly reason: string;
  readonly previousSessionId: string | null;
  attempts: number;
  lastError: RoomClientError | null;
  timer: ReturnType<typeof setTimeout> | null;
}

class Client<ServerMessage, ClientMessage> implements RoomClient<ServerMessage, ClientMessage> {
  private _state: RoomClientState | "connecting" = "connecting";
  private connection: Connection | null = null;
  private session: SessionInfo | null = null;
  private retry: Retry | null = null;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  /** Encoded frames waiting for a connection, in order. */
  private readonly queue: (string | Uint8Array)[] = [];
  private readonly inbox = new Inbox<ServerMessage>();
  private readonly listeners = new Listeners();
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
    private readonly options: RoomClientOptions<ServerMessage>,
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
    for (const [name, listener] of Object.entries(options.on ?? {})) {
      if (listener !== undefined)
        this.listeners.add(name as keyof RoomClientEvents, listener as () => void);
    }
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  get sessionId(): string | null {
    return this.session?.id ?? null;
  }

  get state(): RoomClientState {
    return this._state === "connecting" ? "reconnecting" : this._state;
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
    const connection: Connection = new Connection(this.settings, resume, {
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
    if (session !== null) this.session = session;
    this._state = "open";
    const connection = this.connection;
    for (const frame of this.queue.splice(0)) connection?.send(frame);
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
      });
    }
  }

  private closed(code: number, reason: string): void {
    this.connection = null;
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

  private frame(data: string | Uint8Array): void {
    let frame;
    try {
      frame = decode(this.settings.format, data);
    } catch (error) {
      if (error instanceof InvalidMessageError) return this.invalid(error);
      throw error;
    }
    switch (frame.kind) {
      case "session":
        return this.invalid(
          new InvalidMessageError("unexpected $session frame in the middle of a connection", data),
        );
      case "error":
        if (!this.listeners.emit("error", frame.error)) {
          console.warn(`trio-rooms-client: the server sent an error: ${frame.error.text}`);
        }
        return;
      case "message": {
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
    this.inbox.end(error ?? new ClientClosedError());
    const event: CloseEvent = { code, reason, error };
    this.listeners.emit("close", event);
    this.resolveEnded();
  }

  send(message: ClientMessage): void {
    if (this._state === "closing") throw new ClientClosedError();
    if (this._state === "closed") throw this.outcome ?? new ClientClosedError();
    const checked = this.schema.client.safeParse(message);
    if (!checked.success) {
      const text = `not a client message of the schema: ${z.prettifyError(checked.error)}`;
      throw new TypeError(text, { cause: checked.error });
    }
    // The parsed message: defaults filled in, as the server's codec would.
    const frame = encode(this.settings.format, checked.data);
    if (this.connection?.writable) {
      this.connection.send(frame);
    } else if (this.queue.length >= this.maxQueued) {
      throw new ClientQueueFullError(this.maxQueued);
    } else {
      this.queue.push(frame);
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

  on<E extends keyof RoomClientEvents>(
    name: E,
    listener: (event: RoomClientEvents[E]) => void,
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
