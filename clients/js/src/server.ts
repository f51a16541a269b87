/**
 * roomcast-client/server: the backend side, for Node (Express, Fastify, plain node:http).
 * Publishes, changes member sets and disconnects users through the gateway's HTTP API with the API
 * key, and mints HS256 tokens. A publish always carries a message id, kept across its retries, so
 * that a retry after a 503 or a lost reply is delivered at most once (docs/guarantees.md, "What a
 * backend must do").
 */
import { createHmac, randomUUID } from "node:crypto";

/** Options of {@link RoomcastApi}. */
export interface ApiOptions {
  /** The gateway (or its load balancer), e.g. `http://127.0.0.1:8080`; `/api/...` is appended. */
  url: string;
  /** The gateway's `ROOMCAST_API_KEY`. */
  apiKey: string;
  /** Attempts after the first for a 502/503/504 or a network error (default 5). */
  retries?: number;
  /** Cap of the first retry delay, doubling up to 5 s, with full jitter (ms, default 200). */
  retryDelay?: number;
  /** Time for one request (ms, default 10000). */
  timeout?: number;
  /** The fetch function (default the global one, Node 18+). */
  fetch?: typeof fetch;
}

/** One event to publish. */
export interface PublishInput {
  room: string;
  event: string;
  data?: unknown;
  /**
   * The message id clients drop duplicates by. Give your message's database id; when absent a
   * random one is made, and kept for this call's retries.
   */
  id?: string;
  /** Keep the event from this user's connections (the sender already shows it). */
  excludeUser?: string;
}

/** Where a publish landed: the event's offset and epoch in the room, and its id. */
export interface Published {
  offset: number;
  epoch: string;
  id: string;
}

/** A refused API call: the HTTP status and the gateway's `error` code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const RETRYABLE = new Set([502, 503, 504]);

/**
 * The gateway's publish API.
 *
 * ```ts
 * const rc = new RoomcastApi({ url: "http://roomcast:8080", apiKey: process.env.ROOMCAST_API_KEY! });
 * await rc.members("dialog:42", { add: ["u1", "u2"] });
 * await rc.publish({ room: "dialog:42", event: "message:new", data: msg, id: msg.id, excludeUser: msg.senderId });
 * ```
 */
export class RoomcastApi {
  private readonly base: string;

  constructor(private readonly options: ApiOptions) {
    this.base = options.url.replace(/\/+$/, "");
  }

  /** Publishes one event; retries a 502/503/504 or a network error with the same id. */
  publish(input: PublishInput): Promise<Published> {
    const body = {
      room: input.room,
      event: input.event,
      data: input.data,
      id: input.id ?? randomUUID().replace(/-/g, ""),
      exclude_user: input.excludeUser,
    };
    return this.call<Published>("publish", body);
  }

  /** Adds and removes members of a room; removed users' subscriptions end with `left` `removed`. */
  members(room: string, change: { add?: string[]; remove?: string[] }): Promise<{ added: number; removed: number }> {
    return this.call("members", { room, add: change.add, remove: change.remove });
  }

  /** Closes every connection of a user (default code 4003: the client does not come back with the same token). */
  disconnect(user: string, code?: number): Promise<{ closed: number }> {
    return this.call("disconnect", { user, code });
  }

  private async call<T>(path: string, body: object): Promise<T> {
    const { retries = 5, retryDelay = 200, timeout = 10000 } = this.options;
    const doFetch = this.options.fetch ?? fetch;
    for (let attempt = 0; ; attempt++) {
      let failure: Error;
      try {
        const res = await doFetch(`${this.base}/api/${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${this.options.apiKey}`, "content-type": "application/json" },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(timeout),
        });
        const text = await res.text();
        if (res.ok) return JSON.parse(text) as T;
        let reply: { error?: string; message?: string } = {};
        try {
          reply = JSON.parse(text) as typeof reply;
        } catch {
          // not JSON (a proxy's page)
        }
        failure = new ApiError(res.status, reply.error ?? "http", reply.message ?? `HTTP ${res.status}`);
        if (!RETRYABLE.has(res.status)) throw failure;
      } catch (e) {
        if (e instanceof ApiError && !RETRYABLE.has(e.status)) throw e;
        failure = e instanceof Error ? e : new Error(String(e));
      }
      if (attempt >= retries) throw failure;
      const cap = Math.min(5000, retryDelay * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
    }
  }
}

/** Claims of a token minted by {@link signToken}. */
export interface TokenClaims {
  /** The user id. */
  sub: string;
  /** The organisation (connection tokens). */
  org?: string;
  /** The room (subscription tokens only). */
  room?: string;
  /** Lifetime in seconds (default 3600); ignored when `exp` is given. */
  ttl?: number;
  /** Expiry, Unix seconds. */
  exp?: number;
  iss?: string;
  aud?: string;
}

const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");

/**
 * Mints an HS256 JWT for the gateway's `ROOMCAST_JWT_SECRET`: a connection token, or with `room` a
 * subscription token. Serve it to the signed-in user from your backend (the client's `getToken`).
 */
export function signToken(claims: TokenClaims, secret: string): string {
  const { ttl = 3600, ...rest } = claims;
  const payload = { ...rest, exp: claims.exp ?? Math.floor(Date.now() / 1000) + ttl };
  const head = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(JSON.stringify(payload))}`;
  return `${head}.${b64url(createHmac("sha256", secret).update(head).digest())}`;
}
