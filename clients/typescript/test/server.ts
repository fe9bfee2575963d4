// The real trio_rooms server the tests talk to: tests/ts/server.py in a subprocess, run by
// the Python interpreter named in TRIO_ROOMS_PYTHON (the nox session sets it).

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import type { RoomClient, RoomClientEvents } from "../src/index.js";

// build/test/ -> the repository root.
const REPO = fileURLToPath(new URL("../../../../", import.meta.url));

function python(): string {
  const interpreter = process.env["TRIO_ROOMS_PYTHON"];
  if (!interpreter) {
    throw new Error(
      "TRIO_ROOMS_PYTHON is not set: name a Python with trio_rooms installed " +
        "(nox's ts session sets it; by hand: TRIO_ROOMS_PYTHON=$PWD/../../.venv/bin/python)",
    );
  }
  return interpreter;
}

/** A temporary folder for a server's SQLite file; `remove()` deletes it. */
export function tempDatabase(): { path: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "trio-rooms-ts-"));
  return {
    path: join(dir, "rooms.db"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** One run of the server, listening on 127.0.0.1:`port`. */
export class Server {
  private constructor(
    private readonly process: ChildProcess,
    readonly port: number,
  ) {}

  /** The server on `db`, on `port` (0: a free one); resolves once it listens. */
  static start(db: string, port = 0): Promise<Server> {
    const child = spawn(python(), ["-m", "tests.ts.server", db, String(port)], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "inherit"],
    });
    return new Promise((resolve, reject) => {
      let output = "";
      child.once("error", reject);
      child.once("exit", (code) =>
        reject(new Error(`the server exited with ${code} before listening: ${output}`)),
      );
      child.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        const found = /^PORT (\d+)\n/.exec(output);
        if (found?.[1] !== undefined) resolve(new Server(child, Number(found[1])));
      });
    });
  }

  url(room = "lobby"): string {
    return `ws://127.0.0.1:${this.port}/rooms/${room}/websocket`;
  }

  /** Stop it (SIGTERM: a graceful shutdown, sessions closed with 1001) and wait for it. */
  stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null)
      return Promise.resolve();
    return new Promise((resolve) => {
      this.process.once("exit", () => resolve());
      this.process.kill(signal);
    });
  }
}

/** The next `name` event of `client`. */
export function next<E extends keyof RoomClientEvents, S, C, R>(
  client: RoomClient<S, C, R>,
  name: E,
): Promise<RoomClientEvents[E]> {
  return new Promise((resolve) => {
    const remove = client.on(name, (event) => {
      remove();
      resolve(event);
    });
  });
}
