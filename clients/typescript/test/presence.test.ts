// Presence against a real server (tests/ts/server.py): the client keeps the room's
// presences from the `$presence` frames, typed by the schema, and reports each change.

import assert from "node:assert/strict";
import { type AddressInfo, type Socket, connect, createServer } from "node:net";
import { after, before, describe, test } from "node:test";

import { WebSocket } from "ws";

import {
  type InvalidMessageError,
  type PresenceEvent,
  type Presences,
  type RoomClientOf,
  openRoomClient,
} from "../src/index.js";
import { type Device, msgpackSchema, schema } from "./room.schema.js";
import { Server, next, tempDatabase } from "./server.js";

type Contract = typeof schema | typeof msgpackSchema;

let rooms = 0;

/** A room name of its own for each test. */
function freshRoom(): string {
  rooms += 1;
  return `presence-${process.pid}-${rooms}`;
}

/** Every presence event of a client, in order, and a way to wait for the next ones. */
class Events {
  readonly seen: PresenceEvent<Device>[] = [];
  private waiting: { count: number; resolve(): void } | null = null;

  push(event: PresenceEvent<Device>): void {
    this.seen.push(event);
    if (this.waiting !== null && this.seen.length >= this.waiting.count) {
      this.waiting.resolve();
      this.waiting = null;
    }
  }

  /** Resolves once `count` events have come. */
  until(count: number): Promise<void> {
    if (this.seen.length >= count) return Promise.resolve();
    return new Promise((resolve) => (this.waiting = { count, resolve }));
  }
}

/** `presences` as plain data, to compare: key -> [ref, name, typing] in order. */
function plain(presences: Presences<Device>): [string, [string, string, boolean][]][] {
  return [...presences].map(([key, entries]) => [
    key,
    entries.map((entry): [string, string, boolean] => [
      entry.ref,
      entry.meta.name,
      entry.meta.typing,
    ]),
  ]);
}

/** Device names and typing by key. */
function names(presences: Presences<Device>): Record<string, [string, boolean][]> {
  return Object.fromEntries(
    [...presences].map(([key, entries]) => [
      key,
      entries.map((entry): [string, boolean] => [entry.meta.name, entry.meta.typing]),
    ]),
  );
}

/**
 * A TCP proxy to `port`: its first connection goes straight through until `cut()` drops
 * it (no close frame, as a network drop); later ones wait for `release()`.
 */
async function gatedProxy(port: number): Promise<{
  port: number;
  cut(): void;
  release(): void;
  close(): Promise<void>;
}> {
  const sockets: Socket[] = [];
  let opened = 0;
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const proxy = createServer((client) => {
    sockets.push(client);
    client.pause();
    const first = opened === 0;
    opened += 1;
    void (first ? Promise.resolve() : released).then(() => {
      const upstream = connect(port, "127.0.0.1", () => {
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      sockets.push(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      upstream.on("error", end).on("close", end);
      client.on("error", end).on("close", end);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return {
    port: (proxy.address() as AddressInfo).port,
    cut: () => {
      for (const socket of sockets.splice(0)) socket.destroy();
    },
    release,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        proxy.close(() => resolve());
      }),
  };
}

for (const [format, contract] of [
  ["json", schema],
  ["msgpack", msgpackSchema],
] as const satisfies readonly (readonly ["json" | "msgpack", Contract])[]) {
  describe(`presence over ${format}`, () => {
    const db = tempDatabase();
    let server: Server;
    before(async () => {
      server = await Server.start(db.path);
    });
    after(async () => {
      await server.stop();
      db.remove();
    });

    /** A client of `room`; with `watch`, subscribed to presence, its events in `events`. */
    async function open(
      room: string,
      watch: boolean,
      events = new Events(),
      url = server.url(room),
    ): Promise<RoomClientOf<Contract>> {
      const client = await openRoomClient(watch ? `${url}?presence` : url, contract, {
        WebSocket,
        reconnect: { initialDelay: 10, maxDelay: 50 },
        on: { presence: (event) => events.push(event) },
      });
      if (watch) await events.until(1); // the state
      return client;
    }

    test("two watchers see the joins, updates and leaves of two devices in order", async () => {
      const room = freshRoom();
      const [first, second] = [new Events(), new Events()];
      const watchers = [await open(room, true, first), await open(room, true, second)];
      const phone = await open(room, false);
      const laptop = await open(room, false);
      try {
        for (const events of [first, second]) {
          assert.deepEqual(events.seen, [{ joins: new Map(), leaves: new Map(), reset: true }]);
        }
        assert.deepEqual(
          await phone.request({ type: "joinPresence", key: "ann", device: "phone" }),
          {
            type: "presenceDone",
            count: 1,
          },
        );
        // Each change waits for its diff: changes that meet in one turn of the server are
        // one diff, and a busy server may take a close in the turn of the diff before it.
        await Promise.all([first.until(2), second.until(2)]);
        await laptop.request({ type: "joinPresence", key: "ann", device: "laptop" });
        await Promise.all([first.until(3), second.until(3)]);
        await phone.request({ type: "updatePresence", device: "phone", typing: true });
        await Promise.all([first.until(4), second.until(4)]);
        await laptop.close();
        await Promise.all([first.until(5), second.until(5)]);
        const [joined, joinedToo, updated, left] = first.seen.slice(1);
        assert.deepEqual(names(joined!.joins), { ann: [["phone", false]] });
        assert.deepEqual(names(joinedToo!.joins), { ann: [["laptop", false]] });
        assert.deepEqual(names(updated!.leaves), { ann: [["phone", false]] });
        assert.deepEqual(names(updated!.joins), { ann: [["phone", true]] });
        assert.equal(updated!.leaves.get("ann")![0]!.ref, joined!.joins.get("ann")![0]!.ref);
        assert.deepEqual(names(left!.leaves), { ann: [["laptop", false]] });
        assert.equal(left!.joins.size, 0);
        assert.deepEqual(second.seen, first.seen);
        for (const watcher of watchers) {
          assert.deepEqual(names(watcher.presence), { ann: [["phone", true]] });
        }
      } finally {
        await Promise.all([...watchers, phone, laptop].map((client) => client.close()));
      }
    });

    test("a late watcher's state equals what the diffs built", async () => {
      const room = freshRoom();
      const early = new Events();
      const watcher = await open(room, true, early);
      const actors = [await open(room, false), await open(room, false)];
      try {
        const [a, b] = actors as [RoomClientOf<Contract>, RoomClientOf<Contract>];
        // Each change waits for its diff (changes that meet in one turn are one diff).
        await a.request({ type: "joinPresence", key: "ann", device: "phone" });
        await early.until(2);
        await b.request({ type: "joinPresence", key: "bob", device: "web" });
        await early.until(3);
        await a.request({ type: "updatePresence", device: "phone", typing: true });
        await early.until(4);
        await b.request({ type: "joinPresence", key: "ann", device: "web" }); // moves bob's
        await early.until(5);
        const lateEvents = new Events();
        const late = await open(room, true, lateEvents);
        try {
          assert.deepEqual(plain(late.presence), plain(watcher.presence));
          assert.deepEqual(names(late.presence), {
            ann: [
              ["phone", true],
              ["web", false],
            ],
          });
          const reset = lateEvents.seen[0]!;
          assert.equal(reset.reset, true);
          assert.deepEqual(plain(reset.joins), plain(watcher.presence));
        } finally {
          await late.close();
        }
      } finally {
        await Promise.all([watcher, ...actors].map((client) => client.close()));
      }
    });

    test("a reconnect replaces the held state and reports what changed meanwhile", async () => {
      const room = freshRoom();
      const proxy = await gatedProxy(server.port);
      const bob = await open(room, false);
      const carol = await open(room, false);
      const events = new Events();
      await bob.request({ type: "joinPresence", key: "bob", device: "web" });
      const url = `ws://127.0.0.1:${proxy.port}/rooms/${room}/websocket`;
      const watcher = await open(room, true, events, url);
      try {
        assert.deepEqual(names(watcher.presence), { bob: [["web", false]] });
        const held = plain(watcher.presence);
        const disconnected = next(watcher, "disconnect");
        proxy.cut();
        await disconnected;
        await bob.request({ type: "leavePresence" });
        await carol.request({ type: "joinPresence", key: "carol", device: "phone" });
        assert.deepEqual(plain(watcher.presence), held); // kept while away
        const reconnected = next(watcher, "reconnect");
        proxy.release();
        assert.equal((await reconnected).resumed, true);
        await events.until(2);
        const reset = events.seen[1]!;
        assert.equal(reset.reset, true);
        assert.deepEqual(plain(reset.leaves), held);
        assert.deepEqual(names(reset.joins), { carol: [["phone", false]] });
        assert.deepEqual(names(watcher.presence), { carol: [["phone", false]] });
      } finally {
        await Promise.all([watcher, bob, carol].map((client) => client.close()));
        await proxy.close();
      }
    });

    test("a schema without presence skips the frames; a bad meta goes to onInvalid", async () => {
      const room = freshRoom();
      const actor = await open(room, false);
      const invalid: InvalidMessageError[] = [];
      // Another schema's metadata: the server's metas lack `level`.
      const { z } = await import("zod");
      const other = { ...contract, presence: z.strictObject({ level: z.int() }) };
      const strict = await openRoomClient(`${server.url(room)}?presence`, other, {
        WebSocket,
        onInvalid: (error) => invalid.push(error),
      });
      const { presence: _, ...without } = contract;
      const skipping = await openRoomClient(`${server.url(room)}?presence`, without, {
        WebSocket,
        onInvalid: (error) => invalid.push(error),
      });
      try {
        await actor.request({ type: "joinPresence", key: "ann", device: "web" });
        // Its reply comes after the diff of ann's join (one room, one order of events).
        await strict.request({ type: "leavePresence" });
        await skipping.request({ type: "leavePresence" });
        assert.equal(strict.presence.size, 0);
        assert.equal(skipping.presence.size, 0);
        assert.equal(invalid.length, 1);
        assert.match(invalid[0]!.message, /presence of "ann": not the schema's presence metadata/);
      } finally {
        await Promise.all([actor, strict, skipping].map((client) => client.close()));
      }
    });
  });
}
