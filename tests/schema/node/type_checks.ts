// Compiled by tsc --strict with the golden module (test_golden.py): the types that
// z.infer gives the generated schemas are the ones the wire has.
import { z } from "zod";

import {
  Blobs,
  BlobsMsgpack,
  ClientMessage,
  ClientMessageMsgpack,
  msgpackSchema,
  Optionals,
  routes,
  schema,
  ServerMessage,
  ServerMessageMsgpack,
  Tree,
  Unions,
} from "../golden/kinds/schema";
import * as presence from "../golden/presence/schema";
import * as requests from "../golden/requests/schema";

// A field with a default is always there once parsed, an optional one may be missing.
export function defaults(message: Optionals): number {
  const nickname: string | undefined = message.nickname;
  // @ts-expect-error: optional, not null
  message.nickname = null;
  return message.count + message.retries + (nickname === undefined ? 0 : 1);
}

// The tag narrows the union, as a Python match does.
export function tags(message: ClientMessage): string {
  switch (message.type) {
    case "choices!":
      return message.one;
    case "tree":
      return String(message.root.children.length);
    default:
      return message.type;
  }
}

// Recursive classes keep their type through the getter.
export function depth(tree: Tree): number {
  const walk = (node: Tree["root"]): number => 1 + Math.max(0, ...node.children.map(walk));
  return walk(tree.root);
}

export const unions: Unions["amount"][] = [1, 2.5];
// @ts-expect-error: amount is a number
export const wrong: Unions["amount"] = "1";

export const contract: {
  format: "json";
  client: z.ZodType<ClientMessage>;
  server: z.ZodType<ServerMessage>;
} = schema;
export const msgpackContract: {
  format: "msgpack";
  client: z.ZodType<ClientMessageMsgpack>;
  server: z.ZodType<ServerMessageMsgpack>;
} = msgpackSchema;

// Bytes: a base64 string in JSON, a Uint8Array in msgpack.
export const base64: Blobs["payload"] = "AA==";
export const bin: BlobsMsgpack["payload"] = new Uint8Array([0]);
// @ts-expect-error: JSON carries bytes as base64 text
export const notText: BlobsMsgpack["payload"] = "AA==";
// @ts-expect-error: msgpack carries bytes as a bin
export const notBin: Blobs["payload"] = new Uint8Array([0]);
export const body: z.infer<(typeof routes)["POST /move/point"]["body"]> = { xPos: 1, yPos: 2 };

// Requests: each contract maps a request's tag to its reply's schema, a union for a
// union of replies, and the msgpack contract to the msgpack twins.
export const replies: {
  getScore: z.ZodType<requests.Score>;
  fetch: z.ZodType<requests.Blob | requests.Missing>;
  "ping!": z.ZodType<requests.Said>;
} = requests.schema.replies;
export const msgpackReplies: {
  fetch: z.ZodType<requests.BlobMsgpack | requests.Missing>;
} = requests.msgpackSchema.replies;
// @ts-expect-error: a plain message has no reply
export const noReply = requests.schema.replies.say;
// @ts-expect-error: the bytes of a msgpack reply are a bin
export const notBinReply: z.ZodType<requests.Blob | requests.Missing> =
  requests.msgpackSchema.replies.fetch;

// Presence: each contract names the metadata's schema, the msgpack one its twin.
export const presenceMeta: z.ZodType<presence.Member> = presence.schema.presence;
export const presenceMetaMsgpack: z.ZodType<presence.MemberMsgpack> =
  presence.msgpackSchema.presence;
// @ts-expect-error: the msgpack meta's bytes are a bin
export const notBinMeta: z.ZodType<presence.Member> = presence.msgpackSchema.presence;
// @ts-expect-error: a room without presence names none
export const noPresence = requests.schema.presence;
