// request() against a real server (tests/ts/server.py): typed replies, the server's
// refusals, timeouts, out-of-order answers, and what a reconnect does to a request.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { WebSocket } from "ws";

import {
  ClientClosedError,
  InvalidMessageError,
  RequestError,
  RequestLostError,
  RequestTimeoutError,
  openRoomClient,
} from "../src/index.js";
import { msgpackSchema, schema } from "./room.schema.js";
import { Server, next, tempDatabase } from "./server.js";

const FAST_RECONNECT = { initialDelay: 20, maxDelay: 200 };
/** The server's `max_requests_in_flight` (tests/ts/server.py). */
const MAX_REQUESTS_IN_FLIGHT = 8;

let keys = 0;

/** A key no other test uses (waits and tallies are per key, per server process). */
function freshKey(): string {
  keys += 1;
  return `key-${keys}`;
}

for (const format of ["json", "msgpack"] as const) {
  const contract = format === "msgpack" ? msgpackSchema : schema;

  describe(`requests over ${format}`, () => {
    const db = tempDatabase();
    let server: Server;
    const open = () =>
      openRoomClient(server.url(), contract, { WebSocket, format, reconnect: FAST_RECONNECT });
    before(async () => {
      server = await Server.start(db.path);
    });
    after(async () => {
      await server.stop();
      db.remove();
    });

    test("a request gets its reply, typed by the schema, among plain messages", async () => {
      const client = await open();
      client.send({ type: "echo", text: "before", numbers: [] });
      const score = await client.request({ type: "getScore", player: "ann" });
      assert.deepEqual(score, { type: "score", player: "ann", points: 3 });
      const unknown = await client.request({ type: "getScore", player: "bob" });
      assert.deepEqual(unknown, { type: "unknown", player: "bob" });
      // The reply is not a message: only the echo is received.
      assert.deepEqual(await client.receive(), { type: "echoed", text: "before", numbers: [] });
      await client.close();
    });

    test("a handler that refuses gives the caller a RequestError with its reason", async () => {
      const client = await open();
      await assert.rejects(
        client.request({ type: "getScore", player: "" }),
        (error) =>
          error instanceof RequestError &&
          !(error instanceof RequestLostError) &&
          error.reason === "a player must be named" &&
          error.requestType === "getScore",
      );
      assert.equal(client.state, "open");
      const key = freshKey();
      const tallied = await client.request({ type: "tally", key });
      assert.deepEqual(tallied, { type: "tallied", key, count: 1 });
      await client.close();
    });

    test("a request with no reply within its timeout rejects with RequestTimeoutError", async () => {
      const client = await open();
      const key = freshKey();
      await assert.rejects(
        client.request({ type: "wait", key }, { timeout: 200 }),
        (error) =>
          error instanceof RequestTimeoutError &&
          error.timeout === 200 &&
          error.requestType === "wait",
      );
      // Its late reply is dropped; the client goes on.
      const released = await client.request({ type: "release", key });
      assert.deepEqual(released, { type: "released", key, started: 1 });
      assert.deepEqual(await client.request({ type: "getScore", player: "ann" }), {
        type: "score",
        player: "ann",
        points: 3,
      });
      await assert.rejects(client.request({ type: "tally", key }, { timeout: 0 }), RangeError);
      await client.close();
    });

    test("a request that times out while waiting for a connection is never sent", async () => {
      const client = await open();
      const key = freshKey();
      const disconnected = next(client, "disconnect");
      const reconnected = next(client, "reconnect");
      const port = server.port;
      await server.stop("SIGKILL");
      await disconnected;
      await assert.rejects(
        client.request({ type: "tally", key }, { timeout: 50 }),
        RequestTimeoutError,
      );
      server = await Server.start(db.path, port);
      await reconnected;
      // The new server counts from 0: the one that timed out never reached it.
      assert.equal((await client.request({ type: "tally", key })).count, 1);
      await client.close();
    });

    test("concurrent requests are answered out of order, each with its own reply", async () => {
      const client = await open();
      const key = freshKey();
      const order: string[] = [];
      const waits = [1, 2, 3].map(() =>
        client.request({ type: "wait", key }).then((reply) => {
          order.push(reply.type);
          return reply;
        }),
      );
      const release = client.request({ type: "release", key }).then((reply) => {
        order.push(reply.type);
        return reply;
      });
      assert.deepEqual(await release, { type: "released", key, started: 3 });
      assert.deepEqual(
        await Promise.all(waits),
        [1, 2, 3].map(() => ({ type: "waited", key })),
      );
      assert.deepEqual(order, ["released", "waited", "waited", "waited"]);
      await client.close();
    });

    test("requests past the server's limit in flight are refused with its reason", async () => {
      const client = await open();
      const key = freshKey();
      const waits = Array.from({ length: MAX_REQUESTS_IN_FLIGHT }, () =>
        client.request({ type: "wait", key }),
      );
      await assert.rejects(
        client.request({ type: "tally", key }),
        (error) =>
          error instanceof RequestError &&
          error.reason === `too many requests in flight: at most ${MAX_REQUESTS_IN_FLIGHT}`,
      );
      // The waits were not refused: once released, they are answered.
      const releaser = await open();
      await releaser.request({ type: "release", key });
      assert.equal((await Promise.all(waits)).length, MAX_REQUESTS_IN_FLIGHT);
      await Promise.all([client.close(), releaser.close()]);
    });

    test("a request in flight when the connection drops rejects and is not sent again", async () => {
      const client = await open();
      const key = freshKey();
      const waiting = client.request({ type: "wait", key });
      const reconnected = next(client, "reconnect");
      // Written before the close, so the server has it: the wait has started.
      client.send({ type: "bye", code: 1012, reason: "restart" });
      await assert.rejects(waiting, (error) => error instanceof RequestLostError);
      await reconnected;
      const released = await client.request({ type: "release", key });
      assert.deepEqual(released, { type: "released", key, started: 1 }); // it ran once
      await client.close();
    });

    test("requests made while reconnecting are queued and answered once each", async () => {
      const client = await open();
      const key = freshKey();
      const disconnected = next(client, "disconnect");
      const reconnected = next(client, "reconnect");
      client.send({ type: "bye", code: 1012, reason: "restart" });
      await disconnected;
      assert.equal(client.state, "reconnecting");
      const tallies = [
        client.request({ type: "tally", key }),
        client.request({ type: "tally", key }),
      ];
      await reconnected;
      assert.deepEqual(
        (await Promise.all(tallies)).map((reply) => reply.count),
        [1, 2],
      );
      assert.equal((await client.request({ type: "tally", key })).count, 3);
      await client.close();
    });

    test("a request still waiting when the client is closed rejects with ClientClosedError", async () => {
      const client = await open();
      const disconnected = next(client, "disconnect");
      client.send({ type: "bye", code: 1012, reason: "restart" });
      await disconnected;
      const queued = client.request({ type: "tally", key: freshKey() });
      await client.close();
      await assert.rejects(queued, ClientClosedError);
      await assert.rejects(client.request({ type: "tally", key: freshKey() }), ClientClosedError);
    });

    test("send() of a request, and request() of a plain message, are refused with TypeError", async () => {
      const client = await open();
      const request: unknown = { type: "tally", key: "k" };
      assert.throws(
        () => client.send(request as never),
        /'tally' is a request: send it with request\(\)/,
      );
      const plain: unknown = { type: "whoAmI" };
      await assert.rejects(
        client.request(plain as never),
        /'whoAmI' is not a request of the schema/,
      );
      await client.close();
    });
  });
}

describe("a reply the schema does not take", () => {
  test("rejects the request with InvalidMessageError", async () => {
    const db = tempDatabase();
    const server = await Server.start(db.path);
    try {
      // A contract whose reply to getScore is not what the server answers.
      const wrong = { ...schema, replies: { ...schema.replies, getScore: schema.replies.wait } };
      const client = await openRoomClient(server.url(), wrong, { WebSocket });
      await assert.rejects(
        client.request({ type: "getScore", player: "ann" }),
        (error) =>
          error instanceof InvalidMessageError && /not a reply to 'getScore'/.test(error.message),
      );
      await client.close();
    } finally {
      await server.stop();
      db.remove();
    }
  });
});
