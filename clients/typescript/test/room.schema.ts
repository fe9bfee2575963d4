// Hand-written stand-in for the generated module of tests/ts/server.py's TestRoom
// (python -m trio_rooms.schema tests.ts.server:TestRoom). stale.schema.ts is an older
// contract built from it, for the tests of what the server sends that a client does not know.
import { z } from "zod";

export const Echo = z.strictObject({
  type: z.literal("echo"),
  text: z.string(),
  numbers: z.array(z.number().int()),
});
export type Echo = z.infer<typeof Echo>;
export const SetName = z.strictObject({ type: z.literal("setName"), name: z.string() });
export type SetName = z.infer<typeof SetName>;
export const WhoAmI = z.strictObject({ type: z.literal("whoAmI") });
export type WhoAmI = z.infer<typeof WhoAmI>;
export const Bye = z.strictObject({
  type: z.literal("bye"),
  code: z.number().int(),
  reason: z.string(),
});
export type Bye = z.infer<typeof Bye>;
export const SendOdd = z.strictObject({ type: z.literal("sendOdd") });
export type SendOdd = z.infer<typeof SendOdd>;
export const ClientMessage = z.discriminatedUnion("type", [Echo, SetName, WhoAmI, Bye, SendOdd]);
export type ClientMessage = z.infer<typeof ClientMessage>;

export const Echoed = z.strictObject({
  type: z.literal("echoed"),
  text: z.string(),
  numbers: z.array(z.number().int()),
});
export type Echoed = z.infer<typeof Echoed>;
export const NameSet = z.strictObject({ type: z.literal("nameSet"), name: z.string() });
export type NameSet = z.infer<typeof NameSet>;
export const You = z.strictObject({
  type: z.literal("you"),
  sessionId: z.string(),
  name: z.string(),
});
export type You = z.infer<typeof You>;
export const Odd = z.strictObject({ type: z.literal("odd"), value: z.string() });
export type Odd = z.infer<typeof Odd>;
export const Unlisted = z.strictObject({ type: z.literal("unlisted") });
export type Unlisted = z.infer<typeof Unlisted>;
export const ServerMessage = z.discriminatedUnion("type", [Echoed, NameSet, You, Odd, Unlisted]);
export type ServerMessage = z.infer<typeof ServerMessage>;

export const schema = { client: ClientMessage, server: ServerMessage } as const;
