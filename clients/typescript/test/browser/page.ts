// The browser half of tests/ts/test_browser_client.py: bundled with the client for a page
// that Playwright opens in Chromium, it runs one scenario on the browser's own WebSocket
// against tests/ts/server.py and reports what it saw. It speaks an older client's contract
// (stale.schema.ts), so that some of what the server sends is not in its schema; a second
// client on today's contract sends bytes (Uint8Array in msgpack, base64 in JSON).

import { type InvalidMessageError, type WireFormat, openRoomClient } from "../../src/index.js";
import * as current from "../room.schema.js";
import { type ServerMessage, schema } from "../stale.schema.js";

export interface Report {
  readonly echoed: ServerMessage;
  readonly sessionId: string | null;
  readonly reconnect: {
    readonly code: number;
    readonly resumed: boolean;
    readonly sessionId: string | null;
  };
  readonly afterResume: ServerMessage;
  readonly afterOdd: ServerMessage;
  readonly invalid: readonly string[];
  readonly state: string;
  /** The `reversed` answer's data and parts, as the byte values the client received. */
  readonly reversed: { readonly binary: boolean; readonly data: string; readonly parts: string[] };
}

/** Send bytes and describe the answer: whether they were Uint8Array, and their content. */
async function reverse(url: string, format: WireFormat): Promise<Report["reversed"]> {
  const show = (value: string | Uint8Array): string =>
    typeof value === "string" ? value : [...value].join(",");
  if (format === "msgpack") {
    const client = await openRoomClient(url, current.msgpackSchema);
    client.send({ type: "reverse", data: Uint8Array.of(1, 2, 255), parts: [Uint8Array.of(7, 8)] });
    const answer = await client.receive();
    await client.close();
    if (answer.type !== "reversed") throw new Error(`expected reversed, got ${answer.type}`);
    return {
      binary: answer.data instanceof Uint8Array,
      data: show(answer.data),
      parts: answer.parts.map(show),
    };
  }
  const client = await openRoomClient(url, current.schema);
  client.send({ type: "reverse", data: "AQL/", parts: ["Bwg="] });
  const answer = await client.receive();
  await client.close();
  if (answer.type !== "reversed") throw new Error(`expected reversed, got ${answer.type}`);
  return { binary: false, data: show(answer.data), parts: answer.parts.map(show) };
}

async function scenario(url: string, format: WireFormat): Promise<Report> {
  const invalid: InvalidMessageError[] = [];
  const client = await openRoomClient(url, schema, {
    format,
    reconnect: { initialDelay: 20, maxDelay: 200 },
    onInvalid: (error) => invalid.push(error),
  });
  client.send({ type: "echo", text: "from chromium ✓", numbers: [1, 2 ** 40] });
  const echoed = await client.receive();
  client.send({ type: "setName", name: "bea" });
  await client.receive(); // nameSet
  const reconnected = new Promise<Report["reconnect"]>((resolve) => {
    client.on("reconnect", ({ code, resumed, sessionId }) => resolve({ code, resumed, sessionId }));
  });
  client.send({ type: "bye", code: 1012, reason: "restarting" });
  const reconnect = await reconnected;
  client.send({ type: "whoAmI" });
  const afterResume = await client.receive();
  client.send({ type: "sendOdd" });
  const afterOdd = await client.receive();
  await client.close();
  const reversed = await reverse(url, format);
  return {
    echoed,
    sessionId: client.sessionId,
    reconnect,
    afterResume,
    afterOdd,
    invalid: invalid.map((error) => error.message),
    state: client.state,
    reversed,
  };
}

(globalThis as { scenario?: typeof scenario }).scenario = scenario;
