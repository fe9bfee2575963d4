// When to reconnect and how long to wait: the Python client's ReconnectPolicy
// (trio_rooms/client/_policy.py), in milliseconds.

/**
 * Close codes after which the client reconnects: going away, connection lost (no close
 * frame), service restart, try again later. Every other code ends the client.
 */
export const RETRIED_CLOSE_CODES: ReadonlySet<number> = new Set([1001, 1006, 1012, 1013]);

/** Whether a connection closed with `code` is reconnected. */
export function retries(code: number): boolean {
  return RETRIED_CLOSE_CODES.has(code);
}

/** Exponential backoff with jitter between reconnect attempts; every field is optional. */
export interface ReconnectOptions {
  /** Milliseconds before the first attempt (default 100). */
  readonly initialDelay?: number;
  /** The longest wait between attempts, in milliseconds (default 30 000). */
  readonly maxDelay?: number;
  /** Growth of the wait from one attempt to the next, at least 1 (default 2). */
  readonly multiplier?: number;
  /** The fraction of each wait that is random, in [0, 1] (default 0.5). */
  readonly jitter?: number;
  /** Attempts in a row before giving up; `null` (the default) retries forever, 0 never reconnects. */
  readonly maxAttempts?: number | null;
}

/** A checked `ReconnectOptions` with its defaults filled in. */
export interface ReconnectPolicy {
  readonly initialDelay: number;
  readonly maxDelay: number;
  readonly multiplier: number;
  readonly jitter: number;
  readonly maxAttempts: number | null;
}

/**
 * `options` with the defaults filled in.
 *
 * @throws RangeError A value out of its range, as the Python client's checks say.
 */
export function reconnectPolicy(options: ReconnectOptions = {}): ReconnectPolicy {
  const policy: ReconnectPolicy = {
    initialDelay: options.initialDelay ?? 100,
    maxDelay: options.maxDelay ?? 30_000,
    multiplier: options.multiplier ?? 2,
    jitter: options.jitter ?? 0.5,
    maxAttempts: options.maxAttempts === undefined ? null : options.maxAttempts,
  };
  for (const name of ["initialDelay", "maxDelay"] as const) {
    if (!(policy[name] > 0)) throw new RangeError(`${name} must be > 0, got ${policy[name]}`);
  }
  if (!(policy.multiplier >= 1)) {
    throw new RangeError(`multiplier must be >= 1, got ${policy.multiplier}`);
  }
  if (!(policy.jitter >= 0 && policy.jitter <= 1)) {
    throw new RangeError(`jitter must be within [0, 1], got ${policy.jitter}`);
  }
  const attempts = policy.maxAttempts;
  if (attempts !== null && !(Number.isInteger(attempts) && attempts >= 0)) {
    throw new RangeError(`maxAttempts must be an integer >= 0 or null, got ${attempts}`);
  }
  if (policy.maxDelay < policy.initialDelay) {
    throw new RangeError(
      `maxDelay (${policy.maxDelay}) is less than initialDelay (${policy.initialDelay})`,
    );
  }
  return policy;
}

/**
 * The milliseconds to wait before attempt number `attempt` (from 1):
 * `min(maxDelay, initialDelay * multiplier ** (attempt - 1))`, scaled by a random factor
 * in `[1 - jitter, 1]` so that clients dropped together do not come back together.
 */
export function reconnectDelay(
  policy: ReconnectPolicy,
  attempt: number,
  random: () => number,
): number {
  if (attempt < 1) throw new RangeError(`attempts count from 1, got ${attempt}`);
  const base = Math.min(policy.maxDelay, policy.initialDelay * policy.multiplier ** (attempt - 1));
  return base * (1 - policy.jitter * random());
}
