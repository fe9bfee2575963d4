// Replay on resume against a real server (tests/ts/server.py): the client counts what
// it receives as the server does, resumes with `seen`, and gets exactly what it missed.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { WebSocket } from "ws";

import {
  type ReconnectEvent,
  type ResyncEvent,
  type RoomClientOptions,
  openRoomClient,
} from "../src/index.js";
import {
  type ServerMessage,
  type ServerMessageMsgpack,
  msgpackSchema,
  schema,
} from "./room.schema.js";
import { Server, next, tempDatabase } from "./server.js";
import * as stale from "./stale.schema.js";

const FAST_RECONNECT = { initialDelay: 20, maxDelay: 200 };

type AnyServerMessage = ServerMessage | ServerMessageMsgpack;

let rooms = 0;

/** A room name of its own for each test. */
function freshRoom(prefix = "replay"): string {
  rooms += 1;
  return `${prefix}-${process.pid}-${rooms}`;
}

/** What a client gets, in order: its messages, and its reconnect and resync events. */
class Seen {
  readonly messages: AnyServerMessage[] = [];
  readonly events: (["reconnect", ReconnectEvent, number] | ["resync", ResyncEvent, number])[] = [];
  private waiting: { count: number; resolve(): void } | null = null;

  /** The options that feed it. */
  options(format: "json" | "msgpack"): RoomClientOptions<AnyServerMessage> {
    return {
      format,
      WebSocket,
      reconnect: FAST_RECONNECT,
      onMessage: (message) => {
        this.messages.push(message);
        if (this.waiting !== null && this.messages.length >= this.waiting.count) {
          this.waiting.resolve();
          this.waiting = null;
        }
      },
      // Each event with how many messages had come before it.
      on: {
        reconnect: (event) => this.events.push(["reconnect", event, this.messages.length]),
        resync: (event) => this.events.push(["resync", event, this.messages.length]),
      },
    };
  }

  /** Resolves once `count` messages have come. */
  until(count: number): Promise<void> {
    if (this.messages.length >= count) return Promise.resolve();
    return new Promise((resolve) => (this.waiting = { count, resolve }));
  }

  ticks(): number[] {
    return this.messages.map((message) => {
      assert.equal(message.type, "tick", `expected ticks only, got ${JSON.stringify(message)}`);
      return message.type === "tick" ? message.n : -1;
    });
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, index) => from + index);
}

for (const format of ["json", "msgpack"] as const) {
  const contract = format === "msgpack" ? msgpackSchema : schema;

  describe(`replay over ${format}`, () => {
    const db = tempDatabase();
    let server: Server;
    before(async () => {
      server = await Server.start(db.path);
    });
    after(async () => {
      await server.stop();
      db.remove();
    });

    test("a client cut off while 500 broadcasts go out gets exactly the missed ones, then live ones", async () => {
      const room = freshRoom();
      const seen = new Seen();
      const victim = await openRoomClient(server.url(room), contract, seen.options(format));
      const flooder = await openRoomClient(server.url(room), contract, { WebSocket, format });
      assert.equal(victim.seen, 0);
      // Its socket is cut before tick 100; ticks 100 to 299 go out while it is away, and
      // the rest once it is back, live.
      const flooded = await flooder.request(
        { type: "flood", count: 500, cut: victim.sessionId ?? "", cutAt: 100, away: 200 },
        { timeout: 50_000 },
      );
      assert.deepEqual(flooded, { type: "flooded", count: 500 });
      await seen.until(500);
      assert.deepEqual(seen.ticks(), range(0, 500)); // in order, none twice, none missing
      const [reconnect] = seen.events;
      assert.ok(reconnect?.[0] === "reconnect");
      const [, event, before] = reconnect;
      assert.equal(event.code, 1006);
      assert.equal(event.resumed, true);
      assert.ok(before <= 100, `${before} ticks came before the cut`);
      assert.equal(event.replayed, 300 - before); // what it had not received of 0..299
      assert.equal(seen.events.length, 1);
      assert.equal(victim.seen, 500);
      await flooder.request({ type: "flood", count: 1, start: 500 });
      await seen.until(501);
      assert.deepEqual(seen.ticks().slice(500), [500]);
      assert.equal(victim.seen, 501);
      await Promise.all([victim.close(), flooder.close()]);
    });

    test("the client counts what the server counts: messages, also invalid ones, but no library frame or reply", async () => {
      const invalid: unknown[] = [];
      const options = { WebSocket, format, onInvalid: (error: unknown) => invalid.push(error) };
      const old = await openRoomClient(server.url(freshRoom()), stale.schema, options);
      old.send({ type: "sendOdd" }); // Odd and Unlisted, which this schema refuses, then Echoed
      old.send({ type: "ping" }); // answered with the library's {"error": ...}
      old.send({ type: "echo", text: "last", numbers: [] });
      assert.deepEqual(await old.receive(), { type: "echoed", text: "after odd", numbers: [] });
      assert.deepEqual(await old.receive(), { type: "echoed", text: "last", numbers: [] });
      assert.equal(invalid.length, 2);
      assert.equal(old.seen, 4);
      await old.close();
      const client = await openRoomClient(server.url(freshRoom()), contract, options);
      await client.request({ type: "getScore", player: "ann" });
      await assert.rejects(client.request({ type: "getScore", player: "" })); // an $error
      assert.equal(client.seen, 0);
      await client.close();
    });

    test("past the log's bounds the client gets a resync event and the session's snapshot", async () => {
      const room = freshRoom("short"); // a log of 10 messages
      const seen = new Seen();
      const victim = await openRoomClient(server.url(room), contract, seen.options(format));
      const flooder = await openRoomClient(server.url(room), contract, { WebSocket, format });
      await flooder.request({
        type: "flood",
        count: 50,
        cut: victim.sessionId ?? "",
        cutAt: 5,
        away: 40,
      });
      const [reconnect, resync] = seen.events;
      assert.ok(reconnect?.[0] === "reconnect" && resync?.[0] === "resync");
      const before = reconnect[2];
      assert.ok(before <= 5);
      assert.deepEqual([reconnect[1].resumed, reconnect[1].replayed], [true, 0]);
      assert.match(resync[1].reason, /no longer reaches back/);
      assert.equal(resync[2], before); // nothing came between them
      await seen.until(before + 1 + 5);
      assert.deepEqual(seen.messages.slice(before), [
        { type: "snapshot", ticks: 45 },
        ...range(45, 50).map((n) => ({ type: "tick", n })),
      ]);
      assert.equal(seen.events.length, 2);
      await Promise.all([victim.close(), flooder.close()]);
    });
  });
}

describe("replay across a restart", () => {
  for (const format of ["json", "msgpack"] as const) {
    test(`over ${format}, missed broadcasts logged in SQLite are replayed by the new server`, async () => {
      const contract = format === "msgpack" ? msgpackSchema : schema;
      const db = tempDatabase();
      let server = await Server.start(db.path);
      try {
        const room = freshRoom();
        const seen = new Seen();
        const victim = await openRoomClient(server.url(room), contract, seen.options(format));
        const flooder = await openRoomClient(server.url(room), contract, {
          WebSocket,
          format,
          reconnect: FAST_RECONNECT,
        });
        await flooder.request({ type: "flood", count: 100 });
        await seen.until(100);
        // Cut before the next 400, and no resume until the server has restarted.
        const cut = { cut: victim.sessionId ?? "", hold: true };
        await flooder.request({ type: "flood", count: 400, start: 100, ...cut });
        const back = next(flooder, "reconnect");
        const port = server.port;
        await server.stop();
        server = await Server.start(db.path, port);
        await back;
        await seen.until(500);
        assert.deepEqual(seen.ticks(), range(0, 500));
        const [reconnect] = seen.events;
        assert.ok(reconnect?.[0] === "reconnect");
        assert.deepEqual(
          [reconnect[1].resumed, reconnect[1].replayed, reconnect[2]],
          [true, 400, 100],
        );
        assert.equal(seen.events.length, 1);
        await flooder.request({ type: "flood", count: 1, start: 500 });
        await seen.until(501);
        assert.deepEqual(seen.ticks().slice(500), [500]);
        await Promise.all([victim.close(), flooder.close()]);
      } finally {
        await server.stop();
        db.remove();
      }
    });
  }
});
