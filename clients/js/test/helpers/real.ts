// A RoomcastClient on a real socket (the `ws` package) that records what it delivers, with a gate
// on getToken() so that a test can hold a reconnect while it publishes into the gap.
import WebSocket from "ws";
import {
  type ClientOptions,
  type ConnectionState,
  type EphemeralEvent,
  type Joined,
  RoomcastClient,
  type RoomcastError,
  type RoomEvent,
  type RoomReload,
} from "../../src/index.js";
import { RoomcastApi, signToken } from "../../src/server.js";
import { API_KEY, SECRET, until } from "./procs.js";

export interface Recorder {
  user: string;
  client: RoomcastClient;
  events: RoomEvent[];
  ephemeral: EphemeralEvent[];
  reloads: RoomReload[];
  removed: string[];
  errors: RoomcastError[];
  /** `join`/`leave` events, as `join bob` / `leave bob`, per room. */
  presence: Record<string, string[]>;
  /** `subscribed` events (every ok of a subscribe). */
  subscribed: Joined[];
  states: ConnectionState[];
  /** Connections made (`connected` states), with the node that took each. */
  nodes: string[];
  tokens: string[];
  /** `subscribe` frames sent (from the client's debug log), in all and per room. */
  subscribes: number;
  subscribesTo: Record<string, number>;
  /** The data of the events delivered in one room, in delivery order. */
  data(room: string): unknown[];
  /** Makes the next getToken() calls wait until release(). */
  hold(): void;
  release(): void;
  /** Resolves once getToken() is being held (the client is trying to reconnect). */
  held(): Promise<void>;
}

export function api(url: string, retries = 5): RoomcastApi {
  return new RoomcastApi({ url, apiKey: API_KEY, retries });
}

export function record(
  user: string,
  url: ClientOptions["url"],
  options: Partial<ClientOptions> & { ttl?: number; org?: string } = {},
): Recorder {
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  let waiting = false;
  const { ttl = 3600, org = "o1", ...rest } = options;
  const rec: Recorder = {
    user,
    events: [],
    ephemeral: [],
    reloads: [],
    removed: [],
    errors: [],
    presence: {},
    subscribed: [],
    states: [],
    nodes: [],
    tokens: [],
    subscribes: 0,
    subscribesTo: {},
    client: new RoomcastClient({
      url,
      WebSocket,
      getToken: async () => {
        if (gate) {
          waiting = true;
          await gate;
          waiting = false;
        }
        const token = signToken({ sub: user, org, ttl }, SECRET);
        rec.tokens.push(token);
        return token;
      },
      ...rest,
      log: (level, message, fields) => {
        if (message === "subscribe") {
          rec.subscribes++;
          const room = String(fields?.room);
          rec.subscribesTo[room] = (rec.subscribesTo[room] ?? 0) + 1;
        }
        rest.log?.(level, message, fields);
      },
    }),
    data: (room) => rec.events.filter((e) => e.room === room).map((e) => e.data),
    hold() {
      gate = new Promise((ok) => {
        open = ok;
      });
    },
    release() {
      gate = undefined;
      open?.();
    },
    held: () => until(`${user}'s reconnect to ask for a token`, () => waiting).then(() => {}),
  };
  const c = rec.client;
  c.on("event", (e) => rec.events.push(e));
  c.on("ephemeral", (e) => rec.ephemeral.push(e));
  c.on("reload", (r) => rec.reloads.push(r));
  c.on("removed", (r) => rec.removed.push(r.room));
  c.on("error", (e) => rec.errors.push(e));
  const change = (room: string, what: string) => {
    rec.presence[room] = [...(rec.presence[room] ?? []), what];
  };
  c.on("join", (j) => change(j.room, `join ${j.user}`));
  c.on("leave", (l) => change(l.room, `leave ${l.user}`));
  c.on("subscribed", (j) => rec.subscribed.push(j));
  c.on("state", (s) => {
    rec.states.push(s);
    if (s.status === "connected") rec.nodes.push(s.node);
  });
  return rec;
}

/** Waits until the client is connected (count connections so far, at least `n`). */
export function connected(rec: Recorder, n = 1): Promise<void> {
  return until(
    `${rec.user} connected (${n})`,
    () => rec.nodes.length >= n && rec.client.state.status === "connected",
  ).then(() => {});
}

/** Numbers 1..n. */
export const seq = (n: number, from = 1) => Array.from({ length: n }, (_, i) => i + from);
