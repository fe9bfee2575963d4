// Compiled by tsc --strict with the golden module (test_golden.py): the types that
// z.infer gives the generated schemas are the ones the wire has.
import { z } from "zod";

import { ClientMessage, Optionals, routes, schema, ServerMessage, Tree, Unions } from "../golden/kinds/schema";

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

export const contract: { client: z.ZodType<ClientMessage>; server: z.ZodType<ServerMessage> } = schema;
export const body: z.infer<(typeof routes)["POST /move/point"]["body"]> = { xPos: 1, yPos: 2 };
