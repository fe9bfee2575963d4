// Hand-written stand-in for the generated module of the demo's room
// (python -m trio_rooms.schema trio_rooms.demo.app:ChatRoom); the messages of
// trio_rooms/demo/app.py.
import { z } from "zod";

export const SendChat = z.strictObject({ type: z.literal("sendChat"), text: z.string() });
export type SendChat = z.infer<typeof SendChat>;
export const SetName = z.strictObject({ type: z.literal("setName"), name: z.string() });
export type SetName = z.infer<typeof SetName>;
export const ClientMessage = z.discriminatedUnion("type", [SendChat, SetName]);
export type ClientMessage = z.infer<typeof ClientMessage>;

export const Member = z.strictObject({ userId: z.string(), name: z.string() });
export type Member = z.infer<typeof Member>;
// A Chat nested in History has no "type": it is a field's value, not a message.
const chatFields = {
  userId: z.string(),
  name: z.string(),
  text: z.string(),
  sentAt: z.number().int(),
};
export const Chat = z.strictObject({ type: z.literal("chat"), ...chatFields });
export type Chat = z.infer<typeof Chat>;
export const Members = z.strictObject({
  type: z.literal("members"),
  selfId: z.string(),
  members: z.array(Member),
});
export type Members = z.infer<typeof Members>;
export const History = z.strictObject({
  type: z.literal("history"),
  messages: z.array(z.strictObject(chatFields)),
});
export type History = z.infer<typeof History>;
export const UserJoined = z.strictObject({
  type: z.literal("userJoined"),
  userId: z.string(),
  name: z.string(),
});
export type UserJoined = z.infer<typeof UserJoined>;
export const UserLeft = z.strictObject({
  type: z.literal("userLeft"),
  userId: z.string(),
  name: z.string(),
});
export type UserLeft = z.infer<typeof UserLeft>;
export const Renamed = z.strictObject({
  type: z.literal("renamed"),
  userId: z.string(),
  oldName: z.string(),
  name: z.string(),
});
export type Renamed = z.infer<typeof Renamed>;
export const Rejected = z.strictObject({ type: z.literal("rejected"), reason: z.string() });
export type Rejected = z.infer<typeof Rejected>;
export const ServerMessage = z.discriminatedUnion("type", [
  Members,
  History,
  Chat,
  UserJoined,
  UserLeft,
  Renamed,
  Rejected,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;

export const schema = { client: ClientMessage, server: ServerMessage } as const;
