// The reconnect policy's arithmetic and checks, against the Python client's.

import assert from "node:assert/strict";
import { test } from "node:test";

import { RETRIED_CLOSE_CODES } from "../src/index.js";
import { reconnectDelay, reconnectPolicy, retries } from "../src/policy.js";

test("the waits grow by the multiplier up to maxDelay, scaled by 1 - jitter * random", () => {
  const policy = reconnectPolicy({ initialDelay: 100, maxDelay: 1000, multiplier: 2, jitter: 0.5 });
  const top = [1, 2, 3, 4, 5, 60, 5000].map((attempt) => reconnectDelay(policy, attempt, () => 0));
  assert.deepEqual(top, [100, 200, 400, 800, 1000, 1000, 1000]);
  assert.equal(
    reconnectDelay(policy, 2, () => 0.999999),
    200 * (1 - 0.5 * 0.999999),
  );
});

test("the defaults are the Python client's, in milliseconds", () => {
  assert.deepEqual(reconnectPolicy(), {
    initialDelay: 100,
    maxDelay: 30_000,
    multiplier: 2,
    jitter: 0.5,
    maxAttempts: null,
  });
});

test("a value out of its range is refused with RangeError", () => {
  for (const options of [
    { initialDelay: 0 },
    { maxDelay: -1 },
    { multiplier: 0.5 },
    { jitter: 1.5 },
    { maxAttempts: -1 },
    { maxAttempts: 1.5 },
    { initialDelay: 10, maxDelay: 5 },
  ]) {
    assert.throws(() => reconnectPolicy(options), RangeError, JSON.stringify(options));
  }
});

test("1001, 1006, 1012 and 1013 are retried; every other close code ends the client", () => {
  assert.deepEqual([...RETRIED_CLOSE_CODES].sort(), [1001, 1006, 1012, 1013]);
  for (const code of [1000, 1002, 1003, 1008, 1009, 1011, 3000, 4001])
    assert.equal(retries(code), false);
});
