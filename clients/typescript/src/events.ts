// What a client reports besides messages, and the listeners it reports to.

import type { ServerError } from "./errors.js";
import type { SessionInfo } from "./wire.js";

/** A connection opened: the first one, or a reconnect. */
export interface OpenEvent {
  /** The server's `$session` frame; `null` with `resume: false`. */
  readonly session: SessionInfo | null;
  /** Whether an earlier connection was lost (a `reconnect` event follows). */
  readonly reconnected: boolean;
}

/** The connection was lost, or closed with a retried code; the client reconnects. */
export interface DisconnectEvent {
  /** 1006 when it was lost without a close frame. */
  readonly code: number;
  readonly reason: string;
}

/** The client lost its connection and opened a new one (the Python client's `Reconnected`). */
export interface ReconnectEvent {
  /** The close code that ended the previous connection. */
  readonly code: number;
  readonly reason: string;
  /** The connection attempts it took, this one included. */
  readonly attempts: number;
  /** The server resumed the session: same `sessionId`, same data. */
  readonly resumed: boolean;
  /** The session id now; `null` without `resume`. */
  readonly sessionId: string | null;
  /** The session id before the reconnect. */
  readonly previousSessionId: string | null;
  /**
   * How many messages the client missed while away and the server sends again now,
   * before any new one (they arrive as messages do). `null` when the room keeps no replay
   * log (or without `resume`); 0 when nothing was missed, or when it could not be
   * replayed (a `resync` event follows).
   */
  readonly replayed: number | null;
}

/**
 * The messages missed while reconnecting could not be replayed: some are lost. The
 * server's replay log no longer reached back to what the client had received; what the
 * session sends next (its `on_resync` snapshot, if it has one) is meant to bring the
 * client up to date instead. Follows the `reconnect` (or `open`) event of its connection.
 */
export interface ResyncEvent {
  /** The server's explanation. */
  readonly reason: string;
}

/** One presence of a key: one session's, with its metadata (the schema's `presence`). */
export interface PresenceEntry<Meta> {
  /** Names this presence among the room's; an update gives it a new one. */
  readonly ref: string;
  readonly meta: Meta;
}

/** Presences by key, each key's in the order they joined. */
export type Presences<Meta> = ReadonlyMap<string, readonly PresenceEntry<Meta>[]>;

/**
 * Presences came and went; `client.presence` shows the result already. One for each
 * `$presence` frame, with a schema that names the room's `presence`. An update is the
 * leave of its old ref and the join of a new one, in one event.
 */
export interface PresenceEvent<Meta> {
  readonly joins: Presences<Meta>;
  /** As they were when they joined. */
  readonly leaves: Presences<Meta>;
  /**
   * The server sent its whole state (the session subscribed, on this connection or after
   * a reconnect): `joins` and `leaves` are what differs from what the client held.
   */
  readonly reset: boolean;
}

/** The client ended, once and for good. */
export interface CloseEvent {
  readonly code: number;
  readonly reason: string;
  /** `null` after `close()`; else why it ended (a `ConnectionClosedError`, ...). */
  readonly error: Error | null;
}

/** Each event's name and what its listeners get; `Meta`: the presence metadata's type. */
export interface RoomClientEvents<Meta = unknown> {
  open: OpenEvent;
  disconnect: DisconnectEvent;
  reconnect: ReconnectEvent;
  resync: ResyncEvent;
  close: CloseEvent;
  /** The server's `{"error": ...}` frames (default without a listener: `console.warn`). */
  error: ServerError;
  /** Each `$presence` frame, once applied to `client.presence`. */
  presence: PresenceEvent<Meta>;
}

/** A listener for each event, all optional. */
export type RoomClientListeners<Meta = unknown> = {
  readonly [E in keyof RoomClientEvents<Meta>]?:
    ((event: RoomClientEvents<Meta>[E]) => void) | undefined;
};

/** The listeners of one client, called in the order added. */
export class Listeners<Meta> {
  // Each set holds the listeners of its own name only: `add` and `emit` keep them apart.
  private readonly sets = new Map<keyof RoomClientEvents<Meta>, Set<(event: never) => void>>();

  add<E extends keyof RoomClientEvents<Meta>>(
    name: E,
    listener: (event: RoomClientEvents<Meta>[E]) => void,
  ): () => void {
    let set = this.sets.get(name);
    if (set === undefined) this.sets.set(name, (set = new Set()));
    const listeners = set;
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  /** Call each listener of `name`; whether there was any. */
  emit<E extends keyof RoomClientEvents<Meta>>(name: E, event: RoomClientEvents<Meta>[E]): boolean {
    const set = this.sets.get(name) as Set<(event: RoomClientEvents<Meta>[E]) => void> | undefined;
    if (set === undefined || set.size === 0) return false;
    for (const listener of [...set]) callReporting(listener, event);
    return true;
  }
}

/**
 * `callback(value)`; what it throws is reported as an uncaught error, as `EventTarget`
 * does, and does not stop the client in the middle of a step.
 */
export function callReporting<T>(callback: (value: T) => void, value: T): void {
  try {
    callback(value);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
