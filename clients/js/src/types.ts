/** Public types of the client: options, events, states, errors. */
import type { BackoffOptions } from "./backoff.js";
import type { ErrorCode, Position } from "./protocol.js";

/**
 * A function typed with method bivariance, so that the handler properties of the browser's,
 * React Native's and the `ws` package's WebSocket all fit the interface below.
 */
type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"];

/** What the client needs of a WebSocket: the standard browser interface, a small part of it. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class: the global one, or for Node the `ws` package's default export. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/**
 * Where the client keeps positions and seen message ids between page loads or app starts.
 * `localStorage` (browsers) and `AsyncStorage` (React Native) fit as they are.
 */
export interface StorageLike {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
}

/** Log levels of {@link Logger}. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** A log sink. The client never passes a token, in the message or in the fields. */
export type Logger = (level: LogLevel, message: string, fields?: Record<string, string | number | boolean>) => void;

/** A token getter: the connection token, or a subscription token for one room. */
export type TokenGetter = () => string | Promise<string>;

/** Options of {@link RoomcastClient}; only `url` and `getToken` are required. */
export interface ClientOptions {
  /** `wss://host/ws`, or a function called before every connect (to rotate over endpoints). */
  url: string | (() => string);
  /**
   * Returns a fresh connection token. Called before every connect and before the current token's
   * `expires_at` (see `refreshMargin`); the token is sent in the first frame, never in the URL.
   */
  getToken: TokenGetter;
  /** The WebSocket class; default `globalThis.WebSocket`. In Node 20, pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
  /** Keeps positions and seen ids across reloads (`localStorage`, `AsyncStorage`). */
  storage?: StorageLike;
  /** The storage key (default `"roomcast"`); give each signed-in account its own if they share a device. */
  storageKey?: string;
  /** Refresh this long before `expires_at`, at most a quarter of the token's lifetime (ms, default 60000). */
  refreshMargin?: number;
  /** Reconnect backoff (defaults 500 ms, doubling to 20 s, no attempt limit, reset after 10 s up). */
  backoff?: BackoffOptions;
  /** Interval of the client's `ping` (ms); default the `ping_interval_ms` of `connected`. */
  pingInterval?: number;
  /** A `ping` with nothing received for this long means a dead connection (ms, default 10000). */
  pongTimeout?: number;
  /** Time from opening the socket to `connected` (ms, default 10000). */
  connectTimeout?: number;
  /** Message ids remembered per room for dropping duplicates (default 200). */
  dedupSize?: number;
  /** `typing()` sends `typing:start` at most this often and `typing:stop` after this much quiet (ms, default 3000). */
  typingTimeout?: number;
  /**
   * Delivery receipts (rooms subscribed with `receipts: true`): at most one `ack` per room per
   * this many ms, and one more when the room goes quiet (ms, default 200).
   */
  receiptInterval?: number;
  /** Log sink; default none. */
  log?: Logger;
}

/** Options of `subscribe()`; they belong to the room until `unsubscribe()`. */
export interface SubscribeOptions {
  /** A subscription-token getter, called before every subscribe of the room. */
  token?: TokenGetter;
  /**
   * `join`/`leave` events for the room (a presence room of the gateway: `dialog:` by default).
   * Sent again with every resubscribe.
   */
  presence?: boolean;
  /**
   * Acknowledge the room's events to the gateway (`ack`) once the `event` listeners ran, so that
   * the backend gets `delivered` receipts (a receipt room of the gateway). See `receiptInterval`.
   */
  receipts?: boolean;
}

/** An event published to a room (by a backend), delivered once. */
export interface RoomEvent {
  room: string;
  event: string;
  data: unknown;
  id: string;
  offset: number;
  epoch: string;
}

/** An ephemeral event another member emitted (typing indicators): at most once, never stored. */
export interface EphemeralEvent {
  room: string;
  event: string;
  data: unknown;
  from: string;
}

/** A room's position after a `subscribe`: `recovered` is set when it was sent with `since`. */
export interface Joined extends Position {
  room: string;
  recovered?: boolean;
}

/** A user's first connection entered (`join`) or its last one left (`leave`) a presence room. */
export interface PresenceChange {
  room: string;
  user: string;
}

/** One user in a room's presence: its connections there, counting every node. */
export interface PresenceMember {
  connections: number;
}

/** `presence(room)`: who is in the room now, counting every node (the caller's own user too). */
export interface Presence {
  room: string;
  /** By user id. */
  members: Record<string, PresenceMember>;
}

/** `presenceStats(room)`: how many users and connections are in the room, counting every node. */
export interface PresenceStats {
  room: string;
  users: number;
  connections: number;
}

/** "Reload this room from your backend": history did not reach back to the client's position. */
export interface RoomReload extends Position {
  room: string;
}

/** Why the client is disconnected. */
export type DisconnectReason =
  | "idle"
  | "closed"
  | "network"
  | "server-close"
  | "token-expired"
  | "token-unavailable"
  | "forbidden"
  | "client-bug"
  | "no-pong"
  | "connect-timeout"
  | "refresh-failed";

/** The connection's state, as `client.state` and the `state` event give it. */
export type ConnectionState =
  | { status: "connecting"; attempt: number }
  | { status: "connected"; node: string; conn: string; user: string }
  | {
      status: "disconnected";
      reason: DisconnectReason;
      /** The close code, when a close caused it. */
      code?: number;
      /** When the next attempt starts (ms since the epoch); absent when the client stopped. */
      retryAt?: number;
      /** Failed attempts in a row. */
      attempt: number;
    };

/** Codes of {@link RoomcastError}: the server's error codes and the client's own. */
export type RoomcastErrorCode = ErrorCode | "token" | "closed" | "unsubscribed";

/** An error the client reports (the `error` event) or rejects a `subscribe` with. */
export class RoomcastError extends Error {
  constructor(
    readonly code: RoomcastErrorCode,
    message: string,
    readonly room?: string,
  ) {
    super(message);
    this.name = "RoomcastError";
  }
}

/** The events of {@link RoomcastClient}, by name. */
export interface ClientEvents {
  /** A published event, once per message id and room, in offset order per room. */
  event: RoomEvent;
  /** An emitted event of another member (`typing:start`, ...). */
  ephemeral: EphemeralEvent;
  /** The connection state changed. */
  state: ConnectionState;
  /** The room could not be recovered: reload it from your backend; events after `offset` follow. */
  reload: RoomReload;
  /** The user was removed from the room (`left` `removed`); the client will not resubscribe. */
  removed: { room: string };
  /**
   * A `subscribe` of the room was answered `ok`: the first one and every resubscribe (after a
   * reconnect, or `left` `resubscribe`). The moment to take a fresh `presence()` snapshot.
   */
  subscribed: Joined;
  /** A user's first connection entered a room subscribed with `presence: true`. */
  join: PresenceChange;
  /** A user's last connection left a room subscribed with `presence: true`. */
  leave: PresenceChange;
  /** Something failed: a command's error, a refused token, a stop. */
  error: RoomcastError;
}
