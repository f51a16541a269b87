/**
 * The roomcast client: one connection that reconnects, refreshes its token, keeps every room's
 * position, resubscribes with `since` and drops duplicates, so that the app only handles events.
 * The duties it carries out are the seven of docs/guarantees.md, "What a client must do".
 */
import { backoffDelay } from "./backoff.js";
import type { ConnectedFrame, ErrorFrame, EventFrame, OkFrame, Position, ServerFrame } from "./protocol.js";
import { SeenIds } from "./seen.js";
import {
  type ClientEvents,
  type ClientOptions,
  type ConnectionState,
  type DisconnectReason,
  type Joined,
  type Presence,
  type PresenceStats,
  RoomcastError,
  type RoomcastErrorCode,
  type SubscribeOptions,
  type TokenGetter,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./types.js";

/** A room's state on the current connection. */
const IDLE = 0;
const PENDING = 1;
const JOINED = 2;

/** Persisted form of one room: offset, epoch, seen ids. */
type Saved = [number, string, string[]];

interface Room {
  name: string;
  pos?: Position | undefined;
  seen: SeenIds;
  /** Joined by the gateway at connect (`user:`, `org:`). */
  auto?: boolean;
  token?: TokenGetter | undefined;
  /** `join`/`leave` frames asked for in every `subscribe`. */
  presence?: boolean | undefined;
  /** Delivery receipts: `ack` what reached the app. */
  receipts?: boolean | undefined;
  /** Highest offset delivered to the app, with its epoch (receipts). */
  got?: Position | undefined;
  /** Highest offset of `got`'s epoch sent in an `ack`, and the highest the gateway answered `ok`. */
  acked: number;
  confirmed: number;
  /** Armed while an `ack` is due or went out less than `receiptInterval` ago. */
  ackTimer?: unknown;
  /** Generation of the connection on which an `ack` refusal was reported (once per connection). */
  ackErr?: number;
  state: number;
  /** Id of the `subscribe` in flight. */
  pend: number;
  /** A `left` `removed` arrived while a subscribe was in flight. */
  gone?: boolean;
  /** Has been joined once (a later `forbidden` means the user was removed). */
  ever?: boolean;
  /** Failed subscribe attempts in a row (`internal`), for the backoff. */
  tries: number;
  timer?: unknown;
  joined: Promise<Joined>;
  settle?: ((joined: Joined | RoomcastError) => void) | undefined;
}

type Listener<T> = (value: T) => void;
type Reply = (frame: OkFrame | ErrorFrame) => void;
type Typing = { at: number; timer?: unknown };

const same = (a: Position, b: Position) => a.offset === b.offset && a.epoch === b.epoch;

/**
 * A connection to a roomcast gateway, for browsers, React Native and Node.
 *
 * ```ts
 * const client = new RoomcastClient({ url: "wss://rt.example.com/ws", getToken: () => api.rtToken() });
 * client.on("event", (e) => store.apply(e));
 * client.on("reload", ({ room }) => store.reload(room));
 * client.connect();
 * await client.subscribe("dialog:42");
 * ```
 */
export class RoomcastClient {
  private readonly rooms = new Map<string, Room>();
  private readonly listeners: { [type: string]: Set<Listener<never>> | undefined } = {};
  private readonly pending = new Map<number, Reply>();
  /** Rejections of the `presence`/`presence_stats` commands in flight, for a lost connection. */
  private readonly asks = new Map<number, () => void>();
  private readonly typers = new Map<string, Typing>();
  private st: ConnectionState = { status: "disconnected", reason: "idle", attempt: 0 };
  private ws: WebSocketLike | undefined;
  /** Generation of the current socket; callbacks of an older one are ignored. */
  private gen = 0;
  private running = false;
  private attempt = 0;
  private seq = 0;
  private upAt = 0;
  private token: string | undefined;
  /** A token already fetched for the next connect (after a 4003). */
  private fresh: string | undefined;
  private pingEvery = 0;
  private retryTimer: unknown;
  private pingTimer: unknown;
  private deadTimer: unknown;
  private refreshTimer: unknown;
  private flushTimer: unknown;
  private saved: Record<string, Saved> = {};
  private savedUser: string | undefined;
  private readonly loaded: Promise<void>;
  private readonly WS: WebSocketConstructor;

  constructor(private readonly o: ClientOptions) {
    const WS = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError("roomcast-client: no global WebSocket; pass options.WebSocket");
    this.WS = WS;
    this.loaded = this.load();
  }

  /** The current connection state. */
  get state(): ConnectionState {
    return this.st;
  }

  /** Listens to one kind of event; returns the function that stops listening. */
  on<K extends keyof ClientEvents>(type: K, listener: Listener<ClientEvents[K]>): () => void {
    const set = this.listeners[type] ?? new Set();
    this.listeners[type] = set;
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Starts connecting; the client then stays connected until `close()` or a stop. */
  connect(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    void this.open();
  }

  /** Closes the connection (1000) and stops reconnecting. Rooms and positions are kept for `connect()`. */
  close(): void {
    this.running = false;
    // A last receipt for what reached the app, sent before the close frame.
    for (const r of this.rooms.values()) this.ack(r, true);
    this.drop();
    this.flush();
    this.set({ status: "disconnected", reason: "closed", attempt: 0 });
  }

  /**
   * Tells the client the network is probably back (browser `online`, React Native `AppState`
   * active): a pending retry starts now, and an open connection is checked with a `ping` at once.
   */
  reconnectNow(): void {
    if (!this.running) return;
    if (this.st.status === "connected") this.ping();
    else if (this.st.status === "disconnected") {
      this.attempt = 0;
      void this.open();
    }
  }

  /**
   * Joins a room and keeps it joined across reconnects, resubscribing with `since`. Resolves with
   * the position of the first join; rejects when the room is refused (`forbidden`, ...). A room's
   * subscription token, when it needs one, comes from `token`, called before every subscribe.
   */
  subscribe(room: string, options: SubscribeOptions = {}): Promise<Joined> {
    const known = this.rooms.get(room);
    if (known) {
      // Receipts are the client's own switch: they apply at once, also to `user:`/`org:` rooms.
      if (options.receipts !== undefined) known.receipts = options.receipts;
      if (options.presence !== undefined && options.presence !== !!known.presence)
        this.log("warn", "presence of a room already subscribed changes after unsubscribe()", { room });
      return known.joined;
    }
    const r = this.room(room);
    r.token = options.token;
    r.presence = options.presence;
    r.receipts = options.receipts;
    if (this.st.status === "connected") void this.sub(r);
    return r.joined;
  }

  /** Leaves a room and forgets its position. The automatic `user:`/`org:` rooms cannot be left. */
  unsubscribe(room: string): void {
    const r = this.rooms.get(room);
    if (!r || r.auto) return;
    // The last receipt goes out while the room is still joined.
    this.ack(r, true);
    this.rooms.delete(room);
    clearTimeout(r.timer);
    r.settle?.(new RoomcastError("unsubscribed", `unsubscribed from ${room}`, room));
    delete this.saved[room];
    this.dirty();
    if (r.state !== IDLE) this.cmd({ type: "unsubscribe", room }, () => {});
  }

  /**
   * Who is in a room the client has joined (a presence room), counting every node: resolves with
   * each user's connections, rejects with the gateway's code (`forbidden` when not joined,
   * `bad_request` when the room keeps no presence, `internal`) or `closed` when not connected.
   * After a reconnect, take a new snapshot on `subscribed`: `join`/`leave` of the gap are lost.
   */
  presence(room: string): Promise<Presence> {
    return this.ask(room, "presence").then((f) => ({ room, members: f.presence ?? {} }));
  }

  /** How many users and connections are in a room the client has joined; as {@link presence}. */
  presenceStats(room: string): Promise<PresenceStats> {
    return this.ask(room, "presence_stats").then((f) => ({
      room,
      users: f.users ?? 0,
      connections: f.connections ?? 0,
    }));
  }

  /** The last position the client holds for a room. */
  position(room: string): Position | undefined {
    return this.rooms.get(room)?.pos;
  }

  /**
   * Emits an ephemeral event to the other members of a joined room. At most once: false when
   * there is no open connection (nothing is queued); a refusal comes as an `error` event.
   */
  emit(room: string, event: string, data?: unknown): boolean {
    if (this.st.status !== "connected") return false;
    this.send({ type: "emit", room, event, data });
    return true;
  }

  /**
   * Call on every keystroke: sends `typing:start` at most once per `typingTimeout`, and
   * `typing:stop` after `typingTimeout` without a call.
   */
  typing(room: string): void {
    const wait = this.o.typingTimeout ?? 3000;
    const t = this.typers.get(room) ?? { at: 0 };
    this.typers.set(room, t);
    if (Date.now() - t.at >= wait && this.emit(room, "typing:start")) t.at = Date.now();
    clearTimeout(t.timer);
    t.timer = setTimeout(() => this.stopTyping(room), wait);
  }

  /** Sends `typing:stop` now if `typing:start` was sent (call it when the message is sent). */
  stopTyping(room: string): void {
    const t = this.typers.get(room);
    if (!t) return;
    clearTimeout(t.timer);
    this.typers.delete(room);
    if (t.at) this.emit(room, "typing:stop");
  }

  // ---- connection ----

  private async open(): Promise<void> {
    clearTimeout(this.retryTimer);
    const gen = ++this.gen;
    this.set({ status: "connecting", attempt: this.attempt });
    this.log("info", "connecting", { attempt: this.attempt });
    let token: string;
    try {
      await this.loaded;
      token = this.fresh ?? (await this.o.getToken());
    } catch (e) {
      if (gen !== this.gen) return;
      this.report("token", `getToken failed: ${String(e)}`);
      return this.retry("token-unavailable");
    }
    this.fresh = undefined;
    if (gen !== this.gen || !this.running) return;
    this.token = token;
    const url = this.o.url;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(typeof url === "string" ? url : url());
    } catch (e) {
      this.report("closed", `cannot open a WebSocket: ${String(e)}`);
      return this.retry("network");
    }
    this.ws = ws;
    this.deadline(this.o.connectTimeout ?? 10000, "connect-timeout");
    ws.onopen = () => gen === this.gen && this.send({ type: "auth", token });
    ws.onmessage = (e) => gen === this.gen && this.frame(String(e.data));
    ws.onclose = (e) => gen === this.gen && this.closed(e.code, e.reason);
    ws.onerror = () => {};
  }

  /** Forgets the current socket (its callbacks no longer count) and everything tied to it. */
  private drop(): void {
    this.gen++;
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      // Some implementations (ws) report an error for a close while connecting: keep a listener.
      ws.onerror = () => {};
      try {
        ws.close(1000);
      } catch {
        // already closed
      }
    }
    for (const t of [this.retryTimer, this.pingTimer, this.deadTimer, this.refreshTimer]) clearTimeout(t);
    this.pending.clear();
    for (const fail of this.asks.values()) fail();
    this.asks.clear();
    for (const r of this.rooms.values()) {
      clearTimeout(r.timer);
      clearTimeout(r.ackTimer);
      r.ackTimer = undefined;
      // An ack the gateway did not answer may be lost: it goes again after the resubscribe.
      r.acked = r.confirmed;
      r.state = IDLE;
      r.pend = 0;
    }
    for (const t of this.typers.values()) clearTimeout(t.timer);
    this.typers.clear();
    if (this.upAt && Date.now() - this.upAt >= (this.o.backoff?.stableAfter ?? 10000)) this.attempt = 0;
    this.upAt = 0;
  }

  private closed(code: number, reason: string): void {
    this.log("info", "closed", { code, reason });
    this.drop();
    if (code === 1000) this.stop("server-close", code);
    else if (code === 4009 || code === 4400) this.stop("client-bug", code);
    else if (code === 4003) {
      this.set({ status: "disconnected", reason: "forbidden", code, attempt: this.attempt });
      void this.refused();
    } else this.retry(code === 4001 ? "token-expired" : code === 1006 ? "network" : "server-close", code);
  }

  /** 4003: retry only when `getToken()` gives another token than the refused one. */
  private async refused(): Promise<void> {
    const gen = this.gen;
    const old = this.token;
    let token: string | undefined;
    try {
      token = await this.o.getToken();
    } catch {
      // no other token
    }
    if (gen !== this.gen || !this.running) return;
    if (token === undefined || token === old) return this.stop("forbidden", 4003);
    this.fresh = token;
    this.retry("forbidden", 4003);
  }

  /** Closes a connection that stopped answering (or never got going) and reconnects. */
  private dead(reason: DisconnectReason): void {
    this.log("warn", "connection lost", { reason });
    this.drop();
    this.retry(reason);
  }

  private retry(reason: DisconnectReason, code?: number): void {
    if (!this.running) return;
    const delay = backoffDelay(this.attempt, this.o.backoff);
    this.attempt++;
    this.set({ status: "disconnected", reason, code, retryAt: Date.now() + delay, attempt: this.attempt });
    this.log("info", "reconnecting", { delay, attempt: this.attempt });
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }

  private stop(reason: DisconnectReason, code: number): void {
    this.running = false;
    this.set({ status: "disconnected", reason, code, attempt: this.attempt });
    if (code !== 1000) this.report("closed", `closed with ${code} (${reason}); not reconnecting`);
  }

  /** Arms the one timer that ends a connection from which nothing arrives in time. */
  private deadline(ms: number, reason: DisconnectReason): void {
    clearTimeout(this.deadTimer);
    this.deadTimer = setTimeout(() => this.dead(reason), ms);
  }

  private ping(): void {
    clearTimeout(this.pingTimer);
    if (this.st.status !== "connected") return;
    // The deadline first: a pong can come back before send() returns.
    this.deadline(this.o.pongTimeout ?? 10000, "no-pong");
    this.send({ type: "ping" });
    this.pingTimer = setTimeout(() => this.ping(), this.pingEvery);
  }

  /** Schedules the next `refresh`: `refreshMargin` before expiry, at most a quarter of the lifetime. */
  private plan(expiresAt: number): void {
    clearTimeout(this.refreshTimer);
    const left = expiresAt * 1000 - Date.now();
    const wait = Math.max(1000, left - Math.min(this.o.refreshMargin ?? 60000, left / 4));
    this.refreshTimer = setTimeout(() => void this.refresh(), wait);
  }

  private async refresh(): Promise<void> {
    const gen = this.gen;
    let token: string;
    try {
      token = await this.o.getToken();
    } catch (e) {
      if (gen !== this.gen) return;
      this.report("token", `getToken failed before refresh: ${String(e)}`);
      this.refreshTimer = setTimeout(() => void this.refresh(), 2000);
      return;
    }
    if (gen !== this.gen) return;
    this.token = token;
    this.cmd({ type: "refresh", token }, (f) => {
      if (f.type === "ok" && f.expires_at) {
        this.log("debug", "token refreshed", { expires_at: f.expires_at });
        this.plan(f.expires_at);
      } else {
        this.report("unauthorized", "refresh refused; reconnecting with a new token");
        this.dead("refresh-failed");
      }
    });
  }

  private send(frame: object): void {
    try {
      this.ws?.send(JSON.stringify(frame));
    } catch (e) {
      // Not open (yet or any more): its close event follows and recovery takes over.
      this.log("debug", "send failed", { error: String(e) });
    }
  }

  private cmd(frame: object, reply: Reply): number {
    const id = ++this.seq;
    this.pending.set(id, reply);
    this.send({ ...frame, id });
    return id;
  }

  /** Sends `presence`/`presence_stats`; the reply (or the connection's end) settles it. */
  private ask(room: string, type: "presence" | "presence_stats"): Promise<OkFrame> {
    return new Promise((ok, fail) => {
      if (this.st.status !== "connected") {
        fail(new RoomcastError("closed", `not connected: ${type} of ${room} not sent`, room));
        return;
      }
      const id = this.cmd({ type, room }, (f) => {
        this.asks.delete(id);
        f.type === "ok" ? ok(f) : fail(new RoomcastError(f.code, f.message, room));
      });
      this.asks.set(id, () => fail(new RoomcastError("closed", `connection lost before the ${type} reply`, room)));
    });
  }

  private frame(text: string): void {
    let f: ServerFrame;
    try {
      f = JSON.parse(text) as ServerFrame;
    } catch {
      return;
    }
    // Anything that arrives proves the connection alive.
    clearTimeout(this.deadTimer);
    if (f.type === "connected") this.connected(f);
    else if (f.type === "event") this.event(f);
    else if (f.type === "join" || f.type === "leave") {
      if (this.rooms.has(f.room)) this.fire(f.type, { room: f.room, user: f.user });
    } else if (f.type === "left") {
      const r = this.rooms.get(f.room);
      // A `left` refers to the membership the connection had when it was sent: a subscribe
      // already in flight still gets its reply, which decides.
      if (!r || r.state === IDLE) return;
      if (r.pend) r.gone = f.reason === "removed";
      else if (f.reason === "removed") this.removed(r);
      else {
        r.state = IDLE;
        void this.sub(r);
      }
    } else if (f.type === "ok" || f.type === "error") {
      const reply = f.id === undefined ? undefined : this.pending.get(f.id);
      if (f.id !== undefined) this.pending.delete(f.id);
      if (reply) reply(f);
      else if (f.type === "error") this.report(f.code, f.message);
    }
  }

  private connected(f: ConnectedFrame): void {
    this.upAt = Date.now();
    if (this.savedUser !== f.user) {
      // Another account: positions and ids of the previous one mean nothing here.
      this.saved = {};
      this.savedUser = f.user;
      for (const r of this.rooms.values()) {
        r.pos = r.got = undefined;
        r.acked = r.confirmed = 0;
        r.seen = new SeenIds(this.o.dedupSize ?? 200);
      }
    }
    for (const r of this.rooms.values()) if (r.auto && !f.rooms.includes(r.name)) this.rooms.delete(r.name);
    this.set({ status: "connected", node: f.node, conn: f.conn, user: f.user });
    this.log("info", "connected", { node: f.node, conn: f.conn });
    for (const name of f.rooms) {
      const r = this.rooms.get(name) ?? this.room(name);
      r.auto = true;
      const now = f.positions?.[name];
      if (!r.pos || (now && same(now, r.pos))) {
        // Nothing to recover: keep the position the connection was joined at.
        r.pos ??= now;
        r.state = JOINED;
        r.ever = true;
        if (r.pos) r.settle?.({ room: name, ...r.pos });
        this.soon(r);
      }
    }
    for (const r of this.rooms.values()) if (r.state === IDLE) void this.sub(r);
    this.plan(f.expires_at);
    this.pingEvery = this.o.pingInterval ?? (f.ping_interval_ms || 25000);
    this.pingTimer = setTimeout(() => this.ping(), this.pingEvery);
    this.dirty();
  }

  // ---- rooms ----

  private room(name: string): Room {
    const s = this.saved[name];
    let settle: Room["settle"];
    const joined = new Promise<Joined>((ok, fail) => {
      settle = (v) => {
        r.settle = undefined;
        v instanceof RoomcastError ? fail(v) : ok(v);
      };
    });
    joined.catch(() => {});
    const r: Room = {
      name,
      pos: s && { offset: s[0], epoch: s[1] },
      seen: new SeenIds(this.o.dedupSize ?? 200, s?.[2]),
      state: IDLE,
      pend: 0,
      tries: 0,
      acked: 0,
      confirmed: 0,
      joined,
      settle,
    };
    this.rooms.set(name, r);
    return r;
  }

  /** Sends `subscribe` for a room, with `since` when the client holds a position. */
  private async sub(r: Room): Promise<void> {
    const gen = this.gen;
    r.state = PENDING;
    r.pend = -1;
    let token: string | undefined;
    try {
      token = r.token && (await r.token());
    } catch (e) {
      if (gen !== this.gen || this.rooms.get(r.name) !== r) return;
      this.report("token", `subscription token for ${r.name} failed: ${String(e)}`, r.name);
      return this.later(r);
    }
    if (gen !== this.gen || this.rooms.get(r.name) !== r) return;
    const since = r.pos;
    this.log("debug", "subscribe", { room: r.name, since: since ? since.offset : -1 });
    const presence = r.presence || undefined;
    const id = this.cmd({ type: "subscribe", room: r.name, since, token, presence }, (f) => {
      if (this.rooms.get(r.name) !== r || r.pend !== id) return;
      r.pend = 0;
      const gone = r.gone;
      r.gone = false;
      if (f.type === "error") {
        if (f.code === "internal" || (f.code === "unauthorized" && r.token)) return this.later(r);
        if (f.code === "forbidden" && (r.ever || gone)) return this.removed(r);
        this.rooms.delete(r.name);
        delete this.saved[r.name];
        const err = new RoomcastError(f.code, f.message, r.name);
        r.settle?.(err);
        return this.fire("error", err);
      }
      const at = { offset: f.offset ?? 0, epoch: f.epoch ?? "" };
      // After `recovered:true` the client keeps its own position: the `ok`'s is the room's, and
      // the events between the two follow.
      if (!since || f.recovered === false) r.pos = at;
      r.state = JOINED;
      r.ever = true;
      r.tries = 0;
      const joined = { room: r.name, ...at, recovered: f.recovered };
      r.settle?.(joined);
      this.fire("subscribed", joined);
      if (since && f.recovered === false) {
        this.log("warn", "room not recovered; reload it", { room: r.name });
        this.fire("reload", { room: r.name, ...at });
      }
      // A receipt the last connection did not get answered goes now (unless the epoch changed).
      this.soon(r);
      this.dirty();
    });
    r.pend = id;
  }

  /** Retries a room's subscribe after a backoff (`internal`: the node cannot reach its broker). */
  private later(r: Room): void {
    r.state = IDLE;
    r.pend = 0;
    const delay = backoffDelay(r.tries++, this.o.backoff);
    r.timer = setTimeout(() => void this.sub(r), delay);
  }

  private removed(r: Room): void {
    this.rooms.delete(r.name);
    delete this.saved[r.name];
    this.dirty();
    r.settle?.(new RoomcastError("forbidden", `removed from ${r.name}`, r.name));
    this.fire("removed", { room: r.name });
  }

  private event(f: EventFrame): void {
    const r = this.rooms.get(f.room);
    // Events of a room whose subscribe is in flight are sent again after its `ok`.
    if (!r || r.state !== JOINED) return;
    if (f.offset === undefined || f.epoch === undefined || f.id === undefined) {
      this.fire("ephemeral", { room: f.room, event: f.event, data: f.data, from: f.from ?? "" });
      return;
    }
    const p = r.pos;
    // Offsets only grow within a subscription, but they may skip: the events a backend kept from
    // this user (`exclude_user`) are not sent to it. So an offset at or below the position is a
    // replay to drop, and a jump is no gap.
    if (p && p.epoch === f.epoch && f.offset <= p.offset) return;
    r.pos = { offset: f.offset, epoch: f.epoch };
    this.dirty();
    // Delivered now (or, a duplicate id, before): the next receipt covers it, also one that a
    // listener's close() or unsubscribe() sends.
    if (r.receipts) {
      if (r.got?.epoch !== f.epoch) r.acked = r.confirmed = 0;
      r.got = { offset: f.offset, epoch: f.epoch };
    }
    if (r.seen.add(f.id)) {
      this.fire("event", { room: f.room, event: f.event, data: f.data, id: f.id, offset: f.offset, epoch: f.epoch });
    }
    // The ack goes after the listeners ran, and after the rest of this batch of frames.
    this.soon(r);
  }

  // ---- receipts ----

  /** An `ack` is due: sent after the current batch of frames, unless the throttle runs. */
  private soon(r: Room): void {
    if (r.receipts && r.got && !r.ackTimer) r.ackTimer = setTimeout(() => this.ack(r), 0);
  }

  /**
   * Sends `ack` with the highest offset delivered in the room when it moved and the room is
   * joined in that offset's epoch, then keeps the throttle running for `receiptInterval`: its
   * end sends what arrived meanwhile. `last`: no throttle after it (unsubscribe, close).
   */
  private ack(r: Room, last = false): void {
    clearTimeout(r.ackTimer);
    r.ackTimer = undefined;
    const got = r.got;
    if (!r.receipts || !got || got.offset <= r.acked || r.state !== JOINED || this.rooms.get(r.name) !== r) return;
    // The room is in another epoch now (a reload): those offsets name other events there.
    if (r.pos?.epoch !== got.epoch) {
      r.got = undefined;
      return;
    }
    const { offset, epoch } = got;
    const gen = this.gen;
    r.acked = offset;
    this.cmd({ type: "ack", room: r.name, offset, epoch }, (f) => {
      if (f.type === "ok") {
        if (r.got?.epoch === epoch) r.confirmed = Math.max(r.confirmed, offset);
      } else if (r.ackErr !== gen) {
        r.ackErr = gen;
        this.report(f.code, `ack refused in ${r.name}: ${f.message}`, r.name);
      }
    });
    if (!last) r.ackTimer = setTimeout(() => this.ack(r), this.o.receiptInterval ?? 200);
  }

  // ---- storage ----

  private async load(): Promise<void> {
    const s = this.o.storage;
    if (!s) return;
    try {
      const v = JSON.parse((await s.getItem(this.key())) ?? "{}") as { u?: string; r?: Record<string, Saved> };
      this.saved = v.r ?? {};
      this.savedUser = v.u;
      for (const r of this.rooms.values()) {
        const x = this.saved[r.name];
        if (x && !r.pos) {
          r.pos = { offset: x[0], epoch: x[1] };
          r.seen = new SeenIds(this.o.dedupSize ?? 200, x[2]);
        }
      }
    } catch (e) {
      this.log("warn", "storage unreadable", { error: String(e) });
    }
  }

  private key(): string {
    return this.o.storageKey ?? "roomcast";
  }

  /** Positions changed: write them after the current batch of frames. */
  private dirty(): void {
    if (this.o.storage && !this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), 0);
  }

  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const s = this.o.storage;
    if (!s || !this.savedUser) return;
    for (const r of this.rooms.values()) if (r.pos) this.saved[r.name] = [r.pos.offset, r.pos.epoch, r.seen.list()];
    try {
      void Promise.resolve(s.setItem(this.key(), JSON.stringify({ u: this.savedUser, r: this.saved }))).catch((e) =>
        this.log("warn", "storage write failed", { error: String(e) }),
      );
    } catch (e) {
      this.log("warn", "storage write failed", { error: String(e) });
    }
  }

  // ---- events out ----

  private set(state: ConnectionState): void {
    this.st = state;
    this.fire("state", state);
  }

  private fire<K extends keyof ClientEvents>(type: K, value: ClientEvents[K]): void {
    for (const listener of this.listeners[type] ?? []) {
      try {
        (listener as Listener<ClientEvents[K]>)(value);
      } catch (e) {
        this.log("error", `a ${type} listener threw`, { error: String(e) });
      }
    }
  }

  private report(code: RoomcastErrorCode, message: string, room?: string): void {
    this.log("warn", message, room ? { code, room } : { code });
    this.fire("error", new RoomcastError(code, message, room));
  }

  private log(
    level: Parameters<NonNullable<ClientOptions["log"]>>[0],
    message: string,
    fields?: Record<string, string | number | boolean>,
  ): void {
    this.o.log?.(level, message, fields);
  }
}
