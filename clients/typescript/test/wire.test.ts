// The library frames the client reads, parsed as strictly as the server's _wire.py.

import assert from "node:assert/strict";
import { test } from "node:test";

import { decode } from "../src/wire.js";

test("a $skipped frame carries the count of frames a delivery policy dropped", () => {
  assert.deepEqual(decode("json", '{"$skipped": 3}'), { kind: "skipped", count: 3 });
});

test("a $skipped frame whose count is not a positive integer is malformed", () => {
  for (const value of ["0", "-1", "1.5", '"3"', "true", "null"]) {
    const frame = decode("json", `{"$skipped": ${value}}`);
    assert.equal(frame.kind, "malformed", value);
  }
});
