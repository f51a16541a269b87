// The real npm socket.io-client, recorded: every event a socket gets (name and arguments, in
// order), its connects (with `recovered` and the transport), connect errors and disconnect
// reasons, and the tokens its `auth` function handed out. Plus HS256 tokens and the publish API.
import { createHmac } from "node:crypto";
import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { API_KEY, SECRET, until } from "./procs.js";

const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");

/** An HS256 token as a backend mints it: a connection token (sub, org, exp) or a subscription token (sub, room, exp). */
export function signToken(
  claims: { sub: string; org?: string; room?: string; ttl?: number; exp?: number },
  secret = SECRET,
): string {
  const { ttl = 3600, ...rest } = claims;
  const payload = { ...rest, exp: claims.exp ?? Math.floor(Date.now() / 1000) + ttl };
  const head = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(JSON.stringify(payload))}`;
  return `${head}.${b64url(createHmac("sha256", secret).update(head).digest())}`;
}

/** The publish API of a node or of the load balancer; a failed request is retried (same body). */
export class Api {
  /** Requests that failed and were sent again (network errors, 5xx). */
  retried = 0;

  constructor(readonly url: string) {}

  async post(path: string, body: unknown): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch(`${this.url}/api/${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        const text = await res.text();
        if (res.ok) return JSON.parse(text);
        if (res.status < 500 || attempt >= 20) throw new Error(`POST /api/${path}: ${res.status} ${text}`);
      } catch (e) {
        if (attempt >= 20 || (e instanceof Error && e.message.startsWith("POST"))) throw e;
      }
      this.retried++;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }

  publish(body: { room: string; event: string; data?: unknown; id?: string; exclude_user?: string }) {
    return this.post("publish", body) as Promise<{ offset: number; epoch: string; id: string }>;
  }

  members(room: string, add: string[] = [], remove: string[] = []) {
    return this.post("members", { room, add, remove }) as Promise<{ added: number; removed: number }>;
  }

  disconnect(user: string, code?: number) {
    return this.post("disconnect", code === undefined ? { user } : { user, code }) as Promise<{ closed: number }>;
  }
}

export interface Got {
  event: string;
  args: unknown[];
}

export interface Rec {
  user: string;
  socket: Socket;
  /** Every event delivered to the app (socket.onAny), in order. */
  got: Got[];
  connects: { recovered: boolean; id: string; transport: string; at: number }[];
  connectErrors: { message: string; code?: string; at: number }[];
  disconnects: { reason: string; at: number }[];
  /** Tokens handed out by the `auth` function, one per CONNECT. */
  tokens: string[];
  /** The first argument of each `event` delivered. */
  data(event: string): unknown[];
  /** The `n` of each `event` whose data is `{n}` (numbered events), in delivery order. */
  numbers(event: string, room?: string): number[];
}

export type Options = Partial<ManagerOptions & SocketOptions> & {
  org?: string;
  /** Token lifetime in seconds (each token the `auth` function mints). */
  ttl?: number;
  /**
   * How the token is given: `auth` (a function: a fresh token at every CONNECT, the pattern the
   * docs recommend), `static` (`auth: {token}` once), `query` (`?token=`), `header`
   * (`Authorization: Bearer`), `none`.
   */
  give?: "auth" | "static" | "query" | "header" | "none";
  /** Do not call connect(): the test does. */
  lazy?: boolean;
};

/** A socket.io-client socket for `user` (org `o1` unless given), recorded. */
export function client(url: string, user: string, options: Options = {}): Rec {
  const { org = "o1", ttl = 3600, give = "auth", lazy = false, ...rest } = options;
  const tokens: string[] = [];
  const mint = () => {
    const token = signToken({ sub: user, org, ttl });
    tokens.push(token);
    return token;
  };
  const opts: Partial<ManagerOptions & SocketOptions> = { forceNew: true, autoConnect: !lazy, ...rest };
  if (give === "auth") opts.auth = (cb: (data: object) => void) => cb({ token: mint() });
  if (give === "static") opts.auth = { token: mint() };
  if (give === "query") opts.query = { token: mint() };
  if (give === "header") opts.extraHeaders = { Authorization: `Bearer ${mint()}` };
  const socket = io(url, opts);
  const rec: Rec = {
    user,
    socket,
    got: [],
    connects: [],
    connectErrors: [],
    disconnects: [],
    tokens,
    data: (event) => rec.got.filter((g) => g.event === event).map((g) => g.args[0]),
    numbers: (event, room) =>
      rec.got
        .filter((g) => g.event === event && (room === undefined || (g.args[0] as { room?: string }).room === room))
        .map((g) => (g.args[0] as { n: number }).n),
  };
  socket.onAny((event: string, ...args: unknown[]) => rec.got.push({ event, args }));
  socket.on("connect", () =>
    rec.connects.push({
      recovered: socket.recovered,
      id: socket.id ?? "",
      transport: socket.io.engine.transport.name,
      at: Date.now(),
    }),
  );
  socket.on("connect_error", (err: Error & { data?: { code?: string } }) =>
    rec.connectErrors.push({ message: err.message, code: err.data?.code, at: Date.now() }),
  );
  socket.on("disconnect", (reason) => rec.disconnects.push({ reason, at: Date.now() }));
  return rec;
}

/** Waits until `rec` has connected `n` times in all and is connected now. */
export function connected(rec: Rec, n = 1, ms?: number): Promise<void> {
  return until(`${rec.user} connected (${n})`, () => rec.connects.length >= n && rec.socket.connected, ms).then(
    () => {},
  );
}

/** Waits until the socket's engine runs on WebSocket (the upgrade from polling finished). */
export function upgraded(rec: Rec): Promise<void> {
  return until(`${rec.user} upgraded to websocket`, () => rec.socket.io.engine?.transport.name === "websocket").then(
    () => {},
  );
}

/** An ack'ed event: the gateway's reply (`{type: "ok" | "error", ...}`), within 5 s. */
export function ask(rec: Rec, event: string, arg: unknown): Promise<Reply> {
  return rec.socket.timeout(5_000).emitWithAck(event, arg) as Promise<Reply>;
}

export interface Reply {
  type: "ok" | "error";
  id?: number;
  room?: string;
  offset?: number;
  epoch?: string;
  code?: string;
  message?: string;
  expires_at?: number;
}

/** Numbers from..from+n-1. */
export const seq = (n: number, from = 1) => Array.from({ length: n }, (_, i) => i + from);

/** Closes every socket (also when a test failed). */
export function closeAll(recs: Rec[]): void {
  for (const r of recs) r.socket.close();
}

/** One node id per open connection (each live node's `roomcast_connections_open`, from its metrics). */
export async function openConnections(nodes: { id: string; http: string }[]): Promise<string[]> {
  const open: string[] = [];
  for (const n of nodes) {
    // A node that is gone holds nothing.
    const text = await fetch(`${n.http}/metrics`).then(
      (r) => r.text(),
      () => "",
    );
    const m = /^roomcast_connections_open\{[^}]*\} (\d+)/m.exec(text);
    for (let i = 0; i < Number(m?.[1] ?? 0); i++) open.push(n.id);
  }
  return open;
}
