// trio-rooms-client: a typed, reconnecting client for trio_rooms servers, in browsers and Node.

export {
  type ClientMessageOf,
  type PresenceOf,
  type RepliesOf,
  type RequestOptions,
  type RoomClient,
  type RoomClientOf,
  type RoomClientOptions,
  type RoomClientState,
  type RoomSchema,
  type ServerMessageOf,
  openRoomClient,
} from "./client.js";
export {
  ClientClosedError,
  ClientQueueFullError,
  ConnectError,
  ConnectTimeoutError,
  ConnectionClosedError,
  InvalidMessageError,
  RequestError,
  RequestLostError,
  RequestTimeoutError,
  RoomClientError,
  ServerError,
} from "./errors.js";
export type {
  CloseEvent,
  DisconnectEvent,
  OpenEvent,
  PresenceEntry,
  PresenceEvent,
  Presences,
  ReconnectEvent,
  ResyncEvent,
  RoomClientEvents,
  RoomClientListeners,
} from "./events.js";
export { RETRIED_CLOSE_CODES, type ReconnectOptions } from "./policy.js";
export type {
  SocketCloseEvent,
  SocketMessageEvent,
  WebSocketConstructor,
  WebSocketLike,
} from "./socket.js";
export type { SessionInfo, WireFormat } from "./wire.js";
