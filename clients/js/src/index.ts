/**
 * roomcast-client: the client entry point, for browsers, React Native and Node (no DOM API, no
 * runtime dependency). The backend entry point is `roomcast-client/server`.
 */
export { type BackoffOptions, backoffDelay } from "./backoff.js";
export { RoomcastClient } from "./client.js";
export type { ErrorCode, Position } from "./protocol.js";
export {
  type ClientEvents,
  type ClientOptions,
  type ConnectionState,
  type DisconnectReason,
  type EphemeralEvent,
  type Joined,
  type Logger,
  type LogLevel,
  type Presence,
  type PresenceChange,
  type PresenceMember,
  type PresenceStats,
  type RoomEvent,
  RoomcastError,
  type RoomcastErrorCode,
  type RoomReload,
  type StorageLike,
  type SubscribeOptions,
  type TokenGetter,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./types.js";
