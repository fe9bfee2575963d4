// The contract of a client older than tests/ts/server.py: its `Odd.value` was a number
// (the server now sends a string), it has never heard of `Unlisted`, and it can still send
// `Ping`, which the server no longer takes. Built from the room's (generated) module.
import { z } from "zod";

import { Bye, Echo, Echoed, NameSet, SendOdd, SetName, WhoAmI, You } from "./room.schema.js";

export const Ping = z.strictObject({ type: z.literal("ping") });
export const OldOdd = z.strictObject({ type: z.literal("odd"), value: z.number() });
export const ClientMessage = z.discriminatedUnion("type", [
  Echo,
  SetName,
  WhoAmI,
  Bye,
  SendOdd,
  Ping,
]);
export type ClientMessage = z.infer<typeof ClientMessage>;
export const ServerMessage = z.discriminatedUnion("type", [Echoed, NameSet, You, OldOdd]);
export type ServerMessage = z.infer<typeof ServerMessage>;

export const schema = { client: ClientMessage, server: ServerMessage } as const;
