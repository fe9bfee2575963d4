// A WebSocket client on Node's `ws` package, for tests/test_other_clients.py:
//
//   node tests/ws_client.mjs URL
//
// connects to URL and reports each event as one JSON line on stdout:
//   {"open": true}, {"text": "..."}, {"binary": "<base64>"}, {"pong": "<base64>"},
//   {"close": 1000, "reason": "..."}
// and takes one command a line on stdin:
//   {"text": "..."}, {"binary": "<base64>"}, {"ping": "<base64>"},
//   {"close": 1000 | null, "reason": "..."}
// It exits once the connection is closed and stdin has ended.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

// `ws` is a dev dependency of the TypeScript client: `npm ci` there installs it (the
// nox `ts` session does, before `tests`), so resolve it from that folder.
const require = createRequire(
  new URL("../clients/typescript/package.json", import.meta.url),
);
const WebSocket = require("ws");

function report(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

const socket = new WebSocket(process.argv[2]);
socket.on("open", () => report({ open: true }));
socket.on("message", (data, isBinary) =>
  report(
    isBinary
      ? { binary: Buffer.from(data).toString("base64") }
      : { text: data.toString("utf8") },
  ),
);
// Always followed by "close" (1006 when no close frame came): the test reads that.
socket.on("error", (error) =>
  process.stderr.write(`ws error: ${error.message}\n`),
);
socket.on("pong", (data) => report({ pong: data.toString("base64") }));
socket.on("close", (code, reason) =>
  report({ close: code, reason: reason.toString("utf8") }),
);

const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  const command = JSON.parse(line);
  if ("text" in command) {
    socket.send(command.text);
  } else if ("binary" in command) {
    socket.send(Buffer.from(command.binary, "base64"));
  } else if ("ping" in command) {
    socket.ping(Buffer.from(command.ping, "base64"));
  } else if ("close" in command) {
    // No code (null): a close frame with no status code at all.
    if (command.close === null) socket.close();
    else socket.close(command.close, command.reason);
  } else {
    throw new Error(`unknown command: ${line}`);
  }
});
// The test is done with this client: drop the connection if it is still open.
commands.on("close", () => socket.terminate());
