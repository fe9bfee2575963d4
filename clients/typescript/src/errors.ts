// The client's errors: each carries its data as fields, as the Python client's do.

/** The root of this package's errors. */
export class RoomClientError extends Error {
  override name = "RoomClientError";
}

/**
 * A connection could not be opened: the server could not be reached, or it ended the
 * connection before it was open. The first connection is not retried (`openRoomClient`
 * rejects with it); a reconnect is.
 */
export class ConnectError extends RoomClientError {
  override name = "ConnectError";
}

/** A connection was not open within `connectTimeout` (handshake and session frame included). */
export class ConnectTimeoutError extends ConnectError {
  override name = "ConnectTimeoutError";
  constructor(
    message: string,
    readonly timeout: number,
  ) {
    super(message);
  }
}

/**
 * The connection ended for good: the server closed with a code that is not retried
 * (1000, 1003, 1008, 1009, 4001, ...), or reconnecting gave up.
 */
export class ConnectionClosedError extends RoomClientError {
  override name = "ConnectionClosedError";
  constructor(
    readonly code: number,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`the connection closed with ${code}${reason ? ` (${reason})` : ""}`, options);
  }
}

/** `send` while `maxQueued` messages are waiting for a connection already. */
export class ClientQueueFullError extends RoomClientError {
  override name = "ClientQueueFullError";
  constructor(readonly maxQueued: number) {
    super(`${maxQueued} messages are queued already (maxQueued); none can be added`);
  }
}

/** The client was closed with `close()`. */
export class ClientClosedError extends RoomClientError {
  override name = "ClientClosedError";
  constructor() {
    super("the client is closed");
  }
}

/** The server's `{"error": text}` frame: it could not take a frame (the connection stays open). */
export class ServerError extends RoomClientError {
  override name = "ServerError";
  constructor(readonly text: string) {
    super(text);
  }
}

/**
 * A frame that is not one of the server messages: not JSON or msgpack, a message that
 * does not match the schema (`cause` is the `ZodError`), or a malformed library frame.
 */
export class InvalidMessageError extends RoomClientError {
  override name = "InvalidMessageError";
  constructor(
    message: string,
    /** The frame as received: text (JSON) or bytes (msgpack). */
    readonly frame: string | Uint8Array,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A request got no reply: the server answered `{"$error": ...}` with `reason`. Its
 * handler refused it (the reason it gave) or failed (`"internal error"`), the session
 * answers no such request, or too many of this client's requests were in flight
 * (`"too many requests in flight: at most 64"`, the server's `max_requests_in_flight`).
 */
export class RequestError extends RoomClientError {
  override name = "RequestError";
  constructor(
    /** Why, as the server said it. */
    readonly reason: string,
    /** The request's `type`. */
    readonly requestType: string,
    options?: ErrorOptions,
  ) {
    super(`the request '${requestType}' failed: ${reason}`, options);
  }
}

/**
 * The connection was lost after the request was handed to it, before its reply came:
 * it may have run. It is not sent again (a request runs at most once); replies are not
 * replayed on resume.
 */
export class RequestLostError extends RequestError {
  override name = "RequestLostError";
  constructor(requestType: string) {
    super("the connection was lost before the reply came", requestType);
  }
}

/** No reply within the request's `timeout`; if it was sent, it may still run. */
export class RequestTimeoutError extends RoomClientError {
  override name = "RequestTimeoutError";
  constructor(
    readonly requestType: string,
    readonly timeout: number,
  ) {
    super(`no reply to '${requestType}' within ${timeout} ms`);
  }
}
