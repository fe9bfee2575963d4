// The client against a real trio_rooms server (tests/ts/server.py), over Node's `ws`.

import assert from "node:assert/strict";
import { type AddressInfo, type Socket, createServer } from "node:net";
import { after, before, describe, test } from "node:test";

import { WebSocket, WebSocketServer } from "ws";

import {
  ClientClosedError,
  ClientQueueFullError,
  ConnectError,
  ConnectTimeoutError,
  ConnectionClosedError,
  type InvalidMessageError,
  type OpenEvent,
  type RoomClientOptions,
  type ServerError,
  type WireFormat,
  openRoomClient,
} from "../src/index.js";
import {
  type ServerMessage,
  type ServerMessageMsgpack,
  msgpackSchema,
  schema,
} from "./room.schema.js";
import * as stale from "./stale.schema.js";
import { Server, next, tempDatabase } from "./server.js";

const FAST_RECONNECT = { initialDelay: 20, maxDelay: 200 };

type AnyServerMessage = ServerMessage | ServerMessageMsgpack;

/** A client on the test room's contract for `options.format` (JSON by default). */
function open(server: Server, options: RoomClientOptions<AnyServerMessage> = {}, room = "lobby") {
  const contract = options.format === "msgpack" ? msgpackSchema : schema;
  return openRoomClient(server.url(room), contract, {
    WebSocket,
    reconnect: FAST_RECONNECT,
    ...options,
  });
}

/** A client on the contract of an older client (stale.schema.ts). */
function openStale(server: Server, options: RoomClientOptions<stale.ServerMessage> = {}) {
  return openRoomClient(server.url(), stale.schema, {
    WebSocket,
    reconnect: FAST_RECONNECT,
    ...options,
  });
}

for (const format of ["json", "msgpack"] as const satisfies readonly WireFormat[]) {
  describe(`over ${format}`, () => {
    const db = tempDatabase();
    let server: Server;
    before(async () => {
      server = await Server.start(db.path);
    });
    after(async () => {
      await server.stop();
      db.remove();
    });

    test("a message goes to the server and its answer comes back, typed and validated", async () => {
      const client = await open(server, { format });
      client.send({ type: "echo", text: "héllo ✓", numbers: [0, -7, 2 ** 40] });
      assert.deepEqual(await client.receive(), {
        type: "echoed",
        text: "héllo ✓",
        numbers: [0, -7, 2 ** 40],
      });
      client.send({ type: "whoAmI" });
      assert.deepEqual(await client.receive(), {
        type: "you",
        sessionId: client.sessionId,
        name: "anon",
      });
      await client.close();
      assert.equal(client.state, "closed");
    });

    test("bytes fields go both ways as the format carries them", async () => {
      const client = await open(server, { format });
      const data = new Uint8Array([0, 1, 254, 255]);
      if (format === "json") {
        // base64 strings, padded: the server's codec reads them strictly
        client.send({ type: "reverse", data: "AAH+/w==", parts: ["", "YWI="], note: "eA==" });
        assert.deepEqual(await client.receive(), {
          type: "reversed",
          data: "//4BAA==",
          parts: ["", "YmE="],
          size: 4,
          note: "eA==",
        });
        assert.throws(
          () => client.send({ type: "reverse", data: "AAH", parts: [] }),
          /not a client message of the schema/,
        );
      } else {
        client.send({ type: "reverse", data, parts: [new Uint8Array(), Uint8Array.of(97, 98)] });
        const answer = await client.receive();
        assert.equal(answer.type, "reversed");
        if (answer.type !== "reversed") return;
        assert.ok(answer.data instanceof Uint8Array);
        assert.deepEqual([...(answer.data as Uint8Array)], [255, 254, 1, 0]);
        assert.deepEqual(
          answer.parts.map((part) => [...(part as Uint8Array)]),
          [[], [98, 97]],
        );
        assert.equal(answer.size, 4);
        assert.equal(answer.note, undefined);
        assert.throws(
          () => client.send({ type: "reverse", data: "AAH+/w==", parts: [] }),
          /not a client message of the schema/,
        );
      }
      await client.close();
    });

    test("after a server restart the client reconnects and resumes its session, data kept", async () => {
      const client = await open(server, { format });
      const sessionId = client.sessionId;
      assert.ok(sessionId);
      client.send({ type: "setName", name: "ann" });
      assert.deepEqual(await client.receive(), { type: "nameSet", name: "ann" });
      const disconnected = next(client, "disconnect");
      const reconnected = next(client, "reconnect");
      const port = server.port;
      await server.stop();
      assert.equal((await disconnected).code, 1001);
      assert.equal(client.state, "reconnecting");
      server = await Server.start(db.path, port);
      const event = await reconnected;
      assert.equal(event.code, 1001);
      assert.equal(event.resumed, true);
      assert.equal(event.sessionId, sessionId);
      assert.equal(event.previousSessionId, sessionId);
      assert.equal(client.sessionId, sessionId);
      client.send({ type: "whoAmI" });
      assert.deepEqual(await client.receive(), { type: "you", sessionId, name: "ann" });
      await client.close();
    });

    test("messages sent while disconnected wait up to maxQueued, then go out in order", async () => {
      const client = await open(server, { format, maxQueued: 3 });
      const disconnected = next(client, "disconnect");
      const reconnected = next(client, "reconnect");
      const port = server.port;
      await server.stop("SIGKILL"); // no close frame: 1006
      assert.equal((await disconnected).code, 1006);
      for (const text of ["one", "two", "three"]) client.send({ type: "echo", text, numbers: [] });
      assert.throws(
        () => client.send({ type: "echo", text: "four", numbers: [] }),
        (error) => {
          assert.ok(error instanceof ClientQueueFullError);
          assert.equal(error.maxQueued, 3);
          return true;
        },
      );
      server = await Server.start(db.path, port);
      await reconnected;
      for (const text of ["one", "two", "three"]) {
        assert.deepEqual(await client.receive(), { type: "echoed", text, numbers: [] });
      }
      await client.close();
    });

    test("a server message that does not match the schema goes to onInvalid and is skipped", async () => {
      const invalid: InvalidMessageError[] = [];
      const client = await openStale(server, { format, onInvalid: (error) => invalid.push(error) });
      client.send({ type: "sendOdd" });
      // Odd (a string where this schema says number) and Unlisted (no such type) came first.
      assert.deepEqual(await client.receive(), { type: "echoed", text: "after odd", numbers: [] });
      assert.equal(invalid.length, 2);
      assert.match(invalid[0]?.message ?? "", /value/);
      assert.match(invalid[1]?.message ?? "", /type/);
      for (const error of invalid)
        assert.equal(typeof error.frame, format === "json" ? "string" : "object");
      assert.equal(client.state, "open");
      await client.close();
    });

    test("the same messages are delivered to a client whose schema has them", async () => {
      const invalid: InvalidMessageError[] = [];
      const client = await open(server, { format, onInvalid: (error) => invalid.push(error) });
      client.send({ type: "sendOdd" });
      assert.deepEqual(await client.receive(), { type: "odd", value: "not a number" });
      assert.deepEqual(await client.receive(), { type: "unlisted" });
      assert.deepEqual(await client.receive(), { type: "echoed", text: "after odd", numbers: [] });
      assert.deepEqual(invalid, []);
      await client.close();
    });

    test("the server's error frame is an error event, and the client stays connected", async () => {
      const client = await openStale(server, { format });
      const errors: ServerError[] = [];
      client.on("error", (error) => errors.push(error));
      client.send({ type: "ping" }); // a message the server does not know
      client.send({ type: "echo", text: "still here", numbers: [] });
      assert.deepEqual(await client.receive(), { type: "echoed", text: "still here", numbers: [] });
      assert.equal(errors.length, 1);
      assert.match(errors[0]?.text ?? "", /ping/);
      await client.close();
    });

    for (const code of [1012, 1013]) {
      test(`a close with ${code} is retried: the client reconnects and resumes`, async () => {
        const client = await open(server, { format });
        const reconnected = next(client, "reconnect");
        client.send({ type: "bye", code, reason: "later" });
        const event = await reconnected;
        assert.equal(event.code, code);
        assert.equal(event.reason, "later");
        assert.equal(event.resumed, true);
        assert.equal(event.sessionId, client.sessionId);
        await client.close();
      });
    }

    for (const code of [1008, 4001, 3000]) {
      test(`a close with ${code} ends the client: iteration throws ConnectionClosedError`, async () => {
        const client = await open(server, { format });
        const closed = next(client, "close");
        client.send({ type: "bye", code, reason: "go away" });
        await assert.rejects(
          async () => {
            for await (const message of client)
              assert.fail(`unexpected ${JSON.stringify(message)}`);
          },
          (error) =>
            error instanceof ConnectionClosedError &&
            error.code === code &&
            error.reason === "go away",
        );
        const event = await closed;
        assert.equal(event.code, code);
        assert.ok(event.error instanceof ConnectionClosedError);
        assert.throws(() => client.send({ type: "whoAmI" }), ConnectionClosedError);
        assert.equal(client.state, "closed");
      });
    }

    test("a token from an earlier client's open event resumes that session in a new client", async () => {
      const opened: OpenEvent[] = [];
      const first = await open(server, { format, on: { open: (event) => opened.push(event) } });
      first.send({ type: "setName", name: "cy" });
      assert.deepEqual(await first.receive(), { type: "nameSet", name: "cy" });
      await first.close();
      const token = opened[0]?.session?.token;
      assert.ok(token);
      const second = await open(server, { format, resumeToken: token });
      assert.equal(second.sessionId, first.sessionId);
      second.send({ type: "whoAmI" });
      assert.deepEqual(await second.receive(), {
        type: "you",
        sessionId: first.sessionId,
        name: "cy",
      });
      await second.close();
    });

    test("a close with 1000 by the server ends the iteration", async () => {
      const client = await open(server, { format });
      client.send({ type: "echo", text: "last", numbers: [] });
      client.send({ type: "bye", code: 1000, reason: "done" });
      const received: AnyServerMessage[] = [];
      for await (const message of client) received.push(message);
      assert.deepEqual(received, [{ type: "echoed", text: "last", numbers: [] }]);
      assert.equal(client.state, "closed");
    });
  });
}

describe("without a server", () => {
  test("the first connection is not retried: openRoomClient rejects with ConnectError", async () => {
    const db = tempDatabase();
    const server = await Server.start(db.path);
    await server.stop();
    db.remove();
    await assert.rejects(open(server), ConnectError);
  });

  test("a server that accepts and never answers fails the opening after connectTimeout", async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const url = `ws://127.0.0.1:${port}/rooms/lobby/websocket`;
      await assert.rejects(
        openRoomClient(url, schema, { WebSocket, connectTimeout: 200 }),
        (error) => error instanceof ConnectTimeoutError && error.timeout === 200,
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test("a mid-connection $session of its own session is the token its next resume sends", async () => {
    const opened = '{"$session":{"id":"s1","token":"s1.old","resumed":false}}';
    const moved = '{"$session":{"id":"s1","token":"s1.new","resumed":true,"replayed":0}}';
    const chat = '{"type":"you","sessionId":"s1","name":"anon"}';
    const urls: string[] = [];
    const scripted = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    scripted.on("connection", (socket, request) => {
      urls.push(request.url ?? "");
      for (const frame of [opened, moved, chat]) socket.send(frame);
      if (urls.length === 1) socket.close(1012);
    });
    await new Promise((resolve) => scripted.once("listening", resolve));
    const { port } = scripted.address() as AddressInfo;
    const invalid: InvalidMessageError[] = [];
    const client = await openRoomClient(`ws://127.0.0.1:${port}/rooms/lobby/websocket`, schema, {
      WebSocket,
      reconnect: FAST_RECONNECT,
      onInvalid: (error) => invalid.push(error),
    });
    try {
      const reconnected = next(client, "open");
      assert.equal((await client.receive()).type, "you");
      await reconnected;
      assert.deepEqual(invalid, []);
      assert.match(urls[1] ?? "", /resume=s1\.new/);
    } finally {
      await client.close();
      await new Promise((resolve) => scripted.close(resolve));
    }
  });

  test("reconnecting gives up after maxAttempts and ends the client", async () => {
    const db = tempDatabase();
    const server = await Server.start(db.path);
    const client = await open(server, { reconnect: { ...FAST_RECONNECT, maxAttempts: 2 } });
    const closed = next(client, "close");
    await server.stop();
    db.remove();
    const event = await closed;
    assert.equal(event.code, 1001);
    assert.ok(event.error instanceof ConnectionClosedError);
    assert.equal(event.error.reason, "gave up reconnecting after 2 attempts");
    assert.ok(event.error.cause instanceof ConnectError);
    await assert.rejects(client.receive(), ConnectionClosedError);
  });

  test("close() ends the iteration, and send then throws ClientClosedError", async () => {
    const db = tempDatabase();
    const server = await Server.start(db.path);
    try {
      const client = await open(server);
      const iterated = (async () => {
        for await (const message of client) assert.fail(`unexpected ${JSON.stringify(message)}`);
      })();
      await client.close();
      await iterated;
      assert.throws(() => client.send({ type: "whoAmI" }), ClientClosedError);
    } finally {
      await server.stop();
      db.remove();
    }
  });

  test("a message that is not a client message of the schema is refused with TypeError", async () => {
    const db = tempDatabase();
    const server = await Server.start(db.path);
    try {
      const client = await open(server);
      const wrong: unknown = { type: "echo", text: 1, numbers: [] };
      assert.throws(() => client.send(wrong as never), TypeError);
      await client.close();
    } finally {
      await server.stop();
      db.remove();
    }
  });

  test("a contract that names its format is spoken in it, and a format not its own is refused", async () => {
    const db = tempDatabase();
    const server = await Server.start(db.path);
    try {
      // No format given: msgpackSchema's own, so bytes are Uint8Array both ways.
      const client = await openRoomClient(server.url(), msgpackSchema, { WebSocket });
      client.send({ type: "reverse", data: Uint8Array.of(1, 2), parts: [] });
      const answer = await client.receive();
      assert.ok(answer.type === "reversed" && answer.data instanceof Uint8Array);
      await client.close();
      await assert.rejects(
        openRoomClient(server.url(), msgpackSchema, { WebSocket, format: "json" }),
        /TypeError: the schema describes msgpack frames, not json: pass the module's schema/,
      );
      await assert.rejects(
        openRoomClient(server.url(), schema, { WebSocket, format: "msgpack" }),
        /not msgpack: pass the module's msgpackSchema/,
      );
    } finally {
      await server.stop();
      db.remove();
    }
  });
});
