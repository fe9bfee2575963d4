// The client's requests that wait for their reply, by request id (the Python client's
// trio_rooms/client/_requests.py).

import { z } from "zod";

import {
  InvalidMessageError,
  RequestError,
  RequestLostError,
  RequestTimeoutError,
} from "./errors.js";
import { MAX_RID } from "./wire.js";

/** One request waiting for its reply. */
export interface Pending {
  readonly rid: number;
  readonly requestType: string;
  /** Handed to a connection: if that connection is lost, so is the reply. */
  written: boolean;
}

interface Waiter extends Pending {
  readonly reply: z.ZodType;
  readonly resolve: (reply: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** Request ids are never reused by a client, so a late reply can only be dropped. */
export class PendingRequests {
  private last = 0;
  private readonly waiting = new Map<number, Waiter>();

  /**
   * A new request of `requestType` whose reply `reply` parses, and its outcome: it
   * rejects with `RequestTimeoutError` after `timeout` ms (`timedOut` is called first).
   */
  open(
    requestType: string,
    reply: z.ZodType,
    timeout: number,
    timedOut: (pending: Pending) => void,
  ): { pending: Pending; outcome: Promise<unknown> } {
    this.last = this.last < MAX_RID ? this.last + 1 : 1;
    const rid = this.last;
    let pending!: Waiter;
    const outcome = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        timedOut(pending);
        reject(new RequestTimeoutError(requestType, timeout));
      }, timeout);
      pending = { rid, requestType, written: false, reply, resolve, reject, timer };
    });
    this.waiting.set(rid, pending);
    return { pending, outcome };
  }

  /** The reply `value` (its `$rid` taken off) to the request `rid`, from `frame`. */
  reply(rid: number, value: unknown, frame: string | Uint8Array): void {
    const waiter = this.take(rid);
    if (waiter === undefined) return; // it gave up (timed out) before its reply came
    const parsed = waiter.reply.safeParse(value);
    if (parsed.success) return waiter.resolve(parsed.data);
    const message = `not a reply to '${waiter.requestType}' of the schema: ${z.prettifyError(parsed.error)}`;
    waiter.reject(new InvalidMessageError(message, frame, { cause: parsed.error }));
  }

  /** The server's `$error` for the request `rid`. */
  refused(rid: number, reason: string): void {
    const waiter = this.take(rid);
    waiter?.reject(new RequestError(reason, waiter.requestType));
  }

  /**
   * The connection ended: fail the requests written on it. Their replies cannot come
   * on the next one (replies are not replayed), and sending them again could run them
   * twice; those still queued go out on the next connection.
   */
  lost(): void {
    for (const waiter of [...this.waiting.values()]) {
      if (!waiter.written) continue;
      this.take(waiter.rid);
      waiter.reject(new RequestLostError(waiter.requestType));
    }
  }

  /** The client ended: no request will be answered. */
  end(error: Error): void {
    for (const waiter of [...this.waiting.values()]) {
      this.take(waiter.rid);
      waiter.reject(error);
    }
  }

  private take(rid: number): Waiter | undefined {
    const waiter = this.waiting.get(rid);
    if (waiter === undefined) return undefined;
    this.waiting.delete(rid);
    clearTimeout(waiter.timer);
    return waiter;
  }
}
