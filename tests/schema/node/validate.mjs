// Validates frames against an exported contract: the zod module (schema.ts) and the
// JSON Schema documents beside it. One process serves a whole test:
//
//   node validate.mjs DIR
//
// reads one request a line on stdin,
//   {"id": 1, "target": "client" | "server" | "presence" | "GET /info response",
//    "document": "client.schema.json",
//    "format": "json" | "msgpack", "frame": "<JSON text>" | "<msgpack as base64>"}
// and answers each on one line of stdout, after a first {"ready": true}:
//   {"id": 1, "zod": true, "jsonSchema": true, "zodError": null, "jsonSchemaError": null}
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";

import { Ajv2020 } from "ajv/dist/2020.js";
import { Unpackr } from "msgpackr";
import ts from "typescript";

const dir = process.argv[2];
const source = readFileSync(join(dir, "schema.ts"), "utf8");
const { outputText } = ts.transpileModule(source, {
  compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
});
// Imported from a folder inside this project, so that "zod" resolves to its node_modules
// (Node 18, Debian's, has no import.meta.resolve).
const scratch = mkdtempSync(join(dirname(fileURLToPath(import.meta.url)), ".tmp-"));
let contract;
try {
  writeFileSync(join(scratch, "schema.mjs"), outputText);
  contract = await import(pathToFileURL(join(scratch, "schema.mjs")).href);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

const ajv = new Ajv2020({ strict: true, allErrors: false });
// The documents of msgpack frames say {"x-msgpack": "bin"} where JSON Schema has no
// bytes: taught here, as the export's documentation tells users to.
ajv.addKeyword({
  keyword: "x-msgpack",
  schemaType: "string",
  errors: false,
  validate: (kind, value) => kind === "bin" && value instanceof Uint8Array,
});
const validators = new Map();

function jsonSchemaFor(document) {
  let validate = validators.get(document);
  if (validate === undefined) {
    validate = ajv.compile(JSON.parse(readFileSync(join(dir, document), "utf8")));
    validators.set(document, validate);
  }
  return validate;
}

// The contract has the metadata's schema, not the frame's: zod judges each meta of a
// `$presence` frame (the client parses the frame's shape itself, as wire.ts does).
function presenceOf(meta) {
  return {
    safeParse(value) {
      const frame = value?.$presence ?? {};
      for (const part of ["state", "joins", "leaves"]) {
        for (const metas of Object.values(frame[part] ?? {})) {
          for (const item of metas) {
            const parsed = meta.safeParse(item?.meta);
            if (!parsed.success) return parsed;
          }
        }
      }
      return { success: true };
    },
  };
}

function zodFor(target, format) {
  if (target === "presence") {
    const own = format === "msgpack" ? contract.msgpackSchema : undefined;
    return presenceOf((own ?? contract.schema).presence);
  }
  if (target === "client" || target === "server") {
    // A module whose messages hold bytes has a contract per format.
    const own = format === "msgpack" ? contract.msgpackSchema : undefined;
    return (own ?? contract.schema)[target];
  }
  const cut = target.lastIndexOf(" ");
  const zod = contract.routes[target.slice(0, cut)]?.[target.slice(cut + 1)];
  if (zod === undefined) {
    throw new Error(`no schema for ${target}`);
  }
  return zod;
}

// Python's msgpack writes ints beyond 32 bits as 64-bit ones; msgpackr makes
// BigInts of those by default, which z.int() refuses. "auto": a number when safe.
// A new Unpackr also makes Map objects of maps unless told to make plain objects.
const unpackr = new Unpackr({ int64AsType: "auto", mapsAsObjects: true, useRecords: false });

function decode(format, frame) {
  return format === "json" ? JSON.parse(frame) : unpackr.unpack(Buffer.from(frame, "base64"));
}

const write = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
write({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  const request = JSON.parse(line);
  const value = decode(request.format, request.frame);
  const zod = zodFor(request.target, request.format).safeParse(value);
  const validate = jsonSchemaFor(request.document);
  const ok = validate(value);
  write({
    id: request.id,
    zod: zod.success,
    jsonSchema: ok,
    zodError: zod.success ? null : zod.error.message,
    jsonSchemaError: ok ? null : ajv.errorsText(validate.errors),
  });
}
