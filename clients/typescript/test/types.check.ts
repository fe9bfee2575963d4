// Compiled by `npm run check` (tsc --strict), never run: each @ts-expect-error line is a
// misuse the client's types must reject, so tsc fails if one of them compiles.

import { WebSocket as NodeWebSocket } from "ws";
import { z } from "zod";

import {
  type PresenceEvent,
  type Presences,
  type RepliesOf,
  type RoomClient,
  type RoomClientOf,
  type WebSocketConstructor,
  openRoomClient,
} from "../src/index.js";
import {
  type ClientMessage,
  type Device,
  type Score,
  type ServerMessage,
  type ServerMessageMsgpack,
  type Unknown,
  type Waited,
  msgpackSchema,
  schema,
} from "./room.schema.js";
import * as stale from "./stale.schema.js";

// Both WebSocket classes fit the WebSocket option.
export const inNode: WebSocketConstructor = NodeWebSocket;
export const inBrowsers: WebSocketConstructor = globalThis.WebSocket;

export async function misuses(): Promise<void> {
  const client = await openRoomClient("ws://127.0.0.1:1/rooms/a/websocket", schema, {
    WebSocket: NodeWebSocket,
  });
  const typed: RoomClient<ServerMessage, ClientMessage, RepliesOf<typeof schema>> = client;
  typed.send({ type: "echo", text: "hi", numbers: [1] });
  const same: RoomClientOf<typeof schema> = client;
  void same;

  // @ts-expect-error a server message is not sent
  client.send({ type: "echoed", text: "hi", numbers: [] });
  // @ts-expect-error a field of the wrong type
  client.send({ type: "echo", text: 1, numbers: [] });
  // @ts-expect-error a missing field
  client.send({ type: "echo", text: "hi" });
  // @ts-expect-error an unknown tag
  client.send({ type: "nope" });
  // @ts-expect-error an extra key
  client.send({ type: "whoAmI", extra: true });

  const message = await client.receive();
  // @ts-expect-error a server message type that the schema does not have
  if (message.type === "removed") return;
  if (message.type === "you") {
    const id: string = message.sessionId;
    // @ts-expect-error a field of another message
    void message.text;
    void id;
  }
  for await (const each of client) {
    const server: ServerMessage = each;
    // @ts-expect-error iteration yields server messages, not client messages
    const wrong: ClientMessage = each;
    void server;
    void wrong;
  }
  client.on("reconnect", (event) => {
    const attempts: number = event.attempts;
    void attempts;
  });
  // @ts-expect-error no such event
  client.on("nope", () => undefined);
  // @ts-expect-error an option of the wrong type
  await openRoomClient("ws://127.0.0.1:1/", schema, { format: "xml" });
}

// A field with a default may be left out of a send (the client fills it in), as the
// server's codec allows.
export async function defaults(): Promise<void> {
  const Move = z.strictObject({ type: z.literal("move"), speed: z.number().default(1) });
  const withDefault = { client: z.discriminatedUnion("type", [Move]), server: Move } as const;
  const client = await openRoomClient("ws://127.0.0.1:1/rooms/a/websocket", withDefault, {
    WebSocket: NodeWebSocket,
  });
  client.send({ type: "move" });
  client.send({ type: "move", speed: 2 });
  // @ts-expect-error still of its type
  client.send({ type: "move", speed: "fast" });
}

// Bytes: base64 strings with the JSON contract, Uint8Array with the msgpack one.
export async function bytes(): Promise<void> {
  const json = await openRoomClient("ws://127.0.0.1:1/", schema);
  json.send({ type: "reverse", data: "AAE=", parts: [] });
  // @ts-expect-error JSON carries bytes as base64 text
  json.send({ type: "reverse", data: Uint8Array.of(0, 1), parts: [] });
  const bin = await openRoomClient("ws://127.0.0.1:1/", msgpackSchema);
  bin.send({ type: "reverse", data: Uint8Array.of(0, 1), parts: [new Uint8Array()] });
  // @ts-expect-error msgpack carries bytes as a bin
  bin.send({ type: "reverse", data: "AAE=", parts: [] });
  const answer: ServerMessageMsgpack = await bin.receive();
  if (answer.type === "reversed") {
    const data: Uint8Array = answer.data;
    // @ts-expect-error not a string in msgpack
    const text: string = answer.data;
    void data;
    void text;
  }
}

// Requests: the reply's type comes from the schema's replies; a plain message is no
// request, and a request is not sent with send.
export async function requests(): Promise<void> {
  const client = await openRoomClient("ws://127.0.0.1:1/rooms/a/websocket", schema);
  const score: Score | Unknown = await client.request({ type: "getScore", player: "ann" });
  if (score.type === "score") {
    const points: number = score.points;
    void points;
  }
  const waited: Waited = await client.request({ type: "wait", key: "k" }, { timeout: 5000 });
  void waited;
  // @ts-expect-error the reply to wait is not a Score
  const wrong: Score = await client.request({ type: "wait", key: "k" });
  // @ts-expect-error a plain message is no request
  await client.request({ type: "echo", text: "hi", numbers: [] });
  // @ts-expect-error a field of the wrong type
  await client.request({ type: "getScore", player: 1 });
  // @ts-expect-error an extra key
  await client.request({ type: "getScore", player: "ann", extra: 1 });
  // @ts-expect-error a request is sent with request(), not send()
  client.send({ type: "getScore", player: "ann" });
  // @ts-expect-error no such option
  await client.request({ type: "tally", key: "k" }, { timout: 5 });
  client.on("resync", (event) => {
    const reason: string = event.reason;
    void reason;
  });
  client.on("reconnect", (event) => {
    const replayed: number | null = event.replayed;
    void replayed;
  });
  const seen: number | null = client.seen;
  void [score, wrong, seen];
  // A room without requests has no request kinds at all.
  const plain = await openRoomClient("ws://127.0.0.1:1/", stale.schema);
  // @ts-expect-error no requests in this schema
  await plain.request({ type: "whoAmI" });
}

// Presence: the schema's `presence` types `client.presence` and the `presence` events; a
// schema without it has none to read.
export async function presence(): Promise<void> {
  const client = await openRoomClient("ws://127.0.0.1:1/rooms/a/websocket", schema);
  const held: Presences<Device> = client.presence;
  const first: Device | undefined = client.presence.get("ann")?.[0]?.meta;
  // @ts-expect-error the metadata is a Device
  const wrong: string | undefined = client.presence.get("ann")?.[0]?.meta;
  client.on("presence", (event: PresenceEvent<Device>) => {
    const typing: boolean | undefined = event.joins.get("ann")?.[0]?.meta.typing;
    // @ts-expect-error no such field
    const mood: unknown = event.leaves.get("ann")?.[0]?.meta.mood;
    void [typing, mood, event.reset];
  });
  // @ts-expect-error the view is read-only
  client.presence.clear();
  const plain = await openRoomClient("ws://127.0.0.1:1/", stale.schema);
  // @ts-expect-error a schema without presence: its metadata is never, without fields
  const none: string | undefined = plain.presence.get("ann")?.[0]?.meta.name;
  void [held, first, wrong, none];
}
