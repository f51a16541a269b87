/**
 * The roomcast v1 wire frames this client reads and writes (docs/protocol.md). Only the fields the
 * client uses are typed; unknown fields are ignored, as the protocol says.
 */

/** A room's position: the offset of the last event seen and the epoch it belongs to. */
export interface Position {
  offset: number;
  epoch: string;
}

/** Error codes of `error` frames. */
export type ErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "rate_limited"
  | "too_large"
  | "internal";

/** First frame of an authenticated connection. */
export interface ConnectedFrame {
  type: "connected";
  conn: string;
  node: string;
  user: string;
  org?: string;
  rooms: string[];
  /** Current position of each room joined automatically (gateways before this field omit it). */
  positions?: Record<string, Position>;
  expires_at: number;
  ping_interval_ms: number;
}

/** A published event (with `id`, `offset`, `epoch`) or an emitted one (with `from`). */
export interface EventFrame {
  type: "event";
  room: string;
  event: string;
  data: unknown;
  id?: string;
  offset?: number;
  epoch?: string;
  from?: string;
}

/** Success reply to a command. */
export interface OkFrame {
  type: "ok";
  id?: number;
  room?: string;
  offset?: number;
  epoch?: string;
  recovered?: boolean;
  expires_at?: number;
  /** `presence`: the users in the room and their connections, counting every node. */
  presence?: Record<string, { connections: number }>;
  /** `presence_stats`: how many users are in the room. */
  users?: number;
  /** `presence_stats`: how many connections are in the room. */
  connections?: number;
}

/** Failure reply to a command, or a failure the client should know about. */
export interface ErrorFrame {
  type: "error";
  id?: number;
  code: ErrorCode;
  message: string;
}

/** A subscription ended without the client asking. */
export interface LeftFrame {
  type: "left";
  room: string;
  reason: "removed" | "resubscribe";
}

/** A user's first connection entered, or its last one left, a room watched with `presence`. */
export interface PresenceFrame {
  type: "join" | "leave";
  room: string;
  user: string;
}

/** Reply to `ping`. */
export interface PongFrame {
  type: "pong";
  id?: number;
}

/** Every frame the server sends. */
export type ServerFrame = ConnectedFrame | EventFrame | OkFrame | ErrorFrame | LeftFrame | PresenceFrame | PongFrame;
