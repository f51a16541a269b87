// Rooms: positions from `connected` and `ok`, resubscription with `since` after a reconnect and on
// `left` `resubscribe`, `recovered:false` as `reload`, `left` `removed` as `removed` (also while a
// subscribe is in flight), `internal` retried with backoff, subscription tokens, offset jumps.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RoomcastError, RoomEvent, RoomReload } from "../../src/index.js";
import { EPOCH, event, FakeWebSocket, makeClient, settle, up } from "../helpers/fake-ws.js";

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.all = [];
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

function record() {
  const { client } = makeClient();
  const events: RoomEvent[] = [];
  const reloads: RoomReload[] = [];
  const removed: string[] = [];
  const errors: RoomcastError[] = [];
  client.on("event", (e) => events.push(e));
  client.on("reload", (r) => reloads.push(r));
  client.on("removed", (r) => removed.push(r.room));
  client.on("error", (e) => errors.push(e));
  const got = (room?: string) => events.filter((e) => !room || e.room === room).map((e) => e.offset);
  return { client, events, reloads, removed, errors, got };
}

/** Plays the `ok` of the last subscribe for `room`. */
function ok(ws: FakeWebSocket, room: string, offset: number, extra: Record<string, unknown> = {}) {
  const sub = ws
    .frames("subscribe")
    .filter((f) => f.room === room)
    .at(-1);
  if (!sub) throw new Error(`no subscribe for ${room}`);
  ws.receive({ type: "ok", id: sub.id, room, offset, epoch: EPOCH, ...extra });
  return sub;
}

async function reconnect(ws: FakeWebSocket, client: ReturnType<typeof record>["client"], over = {}) {
  vi.spyOn(Math, "random").mockReturnValue(0);
  ws.serverClose(1012);
  await settle();
  return up(client, over);
}

describe("rooms", () => {
  it("takes the user: and org: positions from connected and subscribes to nothing for them", async () => {
    const { client } = record();
    const ws = await up(client, {
      positions: { "user:u1": { offset: 4, epoch: EPOCH }, "org:o1": { offset: 9, epoch: EPOCH } },
    });
    expect(ws.frames("subscribe")).toEqual([]);
    expect(client.position("user:u1")).toEqual({ offset: 4, epoch: EPOCH });
    expect(await client.subscribe("org:o1")).toEqual({ room: "org:o1", offset: 9, epoch: EPOCH });
  });

  it("subscribes without since the first time and keeps the ok's position", async () => {
    const { client, got } = record();
    const ws = await up(client);
    const joined = client.subscribe("dialog:1");
    const sub = ok(ws, "dialog:1", 7);
    expect(sub).not.toHaveProperty("since");
    expect(await joined).toEqual({ room: "dialog:1", offset: 7, epoch: EPOCH, recovered: undefined });
    ws.receive(event("dialog:1", 8));
    expect(got()).toEqual([8]);
    expect(client.position("dialog:1")).toEqual({ offset: 8, epoch: EPOCH });
  });

  it("after a reconnect resubscribes every room with since, and user:/org: only when they moved", async () => {
    const { client, got } = record();
    const ws = await up(client);
    void client.subscribe("dialog:1");
    void client.subscribe("dialog:2");
    ok(ws, "dialog:1", 3);
    ok(ws, "dialog:2", 0);
    ws.receive(event("dialog:1", 4));
    ws.receive(event("user:u1", 1));
    const ws2 = await reconnect(ws, client, {
      positions: { "user:u1": { offset: 3, epoch: EPOCH }, "org:o1": { offset: 0, epoch: EPOCH } },
    });
    const subs = ws2.frames("subscribe").map((f) => [f.room, f.since]);
    expect(subs).toEqual([
      ["user:u1", { offset: 1, epoch: EPOCH }],
      ["dialog:1", { offset: 4, epoch: EPOCH }],
      ["dialog:2", { offset: 0, epoch: EPOCH }],
    ]);
    // Events of a room whose since-subscribe is in flight come again after the ok: dropped now.
    ws2.receive(event("user:u1", 3));
    expect(got("user:u1")).toEqual([1]);
    ok(ws2, "user:u1", 3, { recovered: true });
    ws2.receive(event("user:u1", 2));
    ws2.receive(event("user:u1", 3));
    expect(got("user:u1")).toEqual([1, 2, 3]);
  });

  it("after recovered:true keeps its own position, not the ok's", async () => {
    const { client, got } = record();
    const ws = await up(client);
    void client.subscribe("dialog:1");
    ok(ws, "dialog:1", 5);
    const ws2 = await reconnect(ws, client);
    ok(ws2, "dialog:1", 9, { recovered: true });
    expect(client.position("dialog:1")).toEqual({ offset: 5, epoch: EPOCH });
    for (const n of [6, 7, 8, 9, 10]) ws2.receive(event("dialog:1", n));
    expect(got()).toEqual([6, 7, 8, 9, 10]);
  });

  it("turns recovered:false into a reload event carrying the new position", async () => {
    const { client, got, reloads } = record();
    const ws = await up(client);
    void client.subscribe("dialog:1");
    ok(ws, "dialog:1", 5);
    const ws2 = await reconnect(ws, client);
    ok(ws2, "dialog:1", 400, { recovered: false, epoch: "e2" });
    expect(reloads).toEqual([{ room: "dialog:1", offset: 400, epoch: "e2" }]);
    expect(client.position("dialog:1")).toEqual({ offset: 400, epoch: "e2" });
    ws2.receive(event("dialog:1", 401, "m401", "e2"));
    expect(got()).toEqual([401]);
  });

  it("resubscribes with since on left resubscribe, also for user: rooms", async () => {
    const { client, got } = record();
    const ws = await up(client);
    ws.receive(event("user:u1", 1));
    ws.receive({ type: "left", room: "user:u1", reason: "resubscribe" });
    expect(ws.lastOf("subscribe")).toMatchObject({ room: "user:u1", since: { offset: 1, epoch: EPOCH } });
    ws.receive(event("user:u1", 2)); // before the ok: comes again after it
    ok(ws, "user:u1", 2, { recovered: true });
    ws.receive(event("user:u1", 2));
    expect(got()).toEqual([1, 2]);
  });

  it("reports left removed as removed and does not resubscribe", async () => {
    const { client, removed, got } = record();
    const ws = await up(client);
    void client.subscribe("dialog:1");
    ok(ws, "dialog:1", 0);
    ws.receive({ type: "left", room: "dialog:1", reason: "removed" });
    expect(removed).toEqual(["dialog:1"]);
    ws.receive(event("dialog:1", 1));
    expect(got()).toEqual([]);
    const ws2 = await reconnect(ws, client);
    expect(ws2.frames("subscribe")).toEqual([]);
  });

  it("lets the reply of a subscribe in flight decide after a left (ok: still joined)", async () => {
    const { client, removed, got } = record();
    const ws = await up(client);
    void client.subscribe("dialog:1");
    ok(ws, "dialog:1", 0);
    ws.receive({ type: "left", room: "dialog:1", reason: "resubscribe" });
    // The resubscribe is in flight; a removal of the old membership arrives, then the ok.
    ws.receive({ type: "left", room: "dialog:1", reason: "removed" });
    ok(ws, "dialog:1", 0, { recovered: true });
    ws.receive(event("dialog:1", 1));
    expect(removed).toEqual([]);
    expect(got()).toEqual([1]);
    expect(ws.frames("subscribe").length).toBe(2);
  });

  it("lets the reply of a subscribe in flight decide after a left (forbidden: removed)", async () => {
    const { client, removed } = record();
    const ws = await up(client);
    void client.subscribe("dialog:1");
    ok(ws, "dialog:1", 0);
    ws.receive({ type: "left", room: "dialog:1", reason: "resubscribe" });
    ws.receive({ type: "left", room: "dialog:1", reason: "removed" });
    expect(removed).toEqual([]);
    const sub = ws.lastOf("subscribe");
    ws.receive({ type: "error", id: sub.id, code: "forbidden", message: "not a member" });
    expect(removed).toEqual(["dialog:1"]);
  });

  it("reports forbidden after a reconnect as removed (removed while away)", async () => {
    const { client, removed } = record();
    const ws = await up(client);
    void client.subscribe("dialog:1");
    ok(ws, "dialog:1", 0);
    const ws2 = await reconnect(ws, client);
    ws2.receive({ type: "error", id: ws2.lastOf("subscribe").id, code: "forbidden", message: "not a member" });
    expect(removed).toEqual(["dialog:1"]);
  });

  it("rejects a first subscribe that is refused, and reports it", async () => {
    const { client, errors } = record();
    const ws = await up(client);
    const joined = client.subscribe("dialog:9");
    ws.receive({ type: "error", id: ws.lastOf("subscribe").id, code: "forbidden", message: "no" });
    await expect(joined).rejects.toMatchObject({ code: "forbidden", room: "dialog:9" });
    expect(errors.map((e) => e.code)).toEqual(["forbidden"]);
  });

  it("retries a subscribe answered internal after a backoff, not before", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999);
    const { client } = record();
    const ws = await up(client);
    const joined = client.subscribe("dialog:1");
    for (const cap of [500, 1000, 2000]) {
      ws.receive({ type: "error", id: ws.lastOf("subscribe").id, code: "internal", message: "broker down" });
      const n = ws.frames("subscribe").length;
      await vi.advanceTimersByTimeAsync(Math.floor(cap * 0.999) - 1);
      expect(ws.frames("subscribe").length).toBe(n);
      await vi.advanceTimersByTimeAsync(1);
      expect(ws.frames("subscribe").length).toBe(n + 1);
    }
    ok(ws, "dialog:1", 2);
    expect(await joined).toMatchObject({ offset: 2 });
  });

  it("asks the subscription token getter before every subscribe", async () => {
    const { client } = record();
    let n = 0;
    const ws = await up(client);
    void client.subscribe("dialog:7", { token: async () => `sub-${++n}` });
    await settle();
    expect(ws.lastOf("subscribe")).toMatchObject({ room: "dialog:7", token: "sub-1" });
    ok(ws, "dialog:7", 0);
    const ws2 = await reconnect(ws, client);
    await settle();
    expect(ws2.lastOf("subscribe")).toMatchObject({ room: "dialog:7", token: "sub-2", since: { offset: 0 } });
  });

  it("takes an offset jump (events kept from this user by exclude_user) as no gap", async () => {
    const { client, got } = record();
    const ws = await up(client);
    ws.receive(event("user:u1", 1));
    ws.receive(event("user:u1", 4));
    ws.receive(event("user:u1", 5));
    expect(got()).toEqual([1, 4, 5]);
    expect(ws.frames("subscribe")).toEqual([]);
    expect(client.position("user:u1")).toEqual({ offset: 5, epoch: EPOCH });
  });

  it("unsubscribe leaves the room and drops its later events", async () => {
    const { client, got } = record();
    const ws = await up(client);
    void client.subscribe("dialog:1");
    ok(ws, "dialog:1", 0);
    client.unsubscribe("dialog:1");
    expect(ws.lastOf("unsubscribe")).toMatchObject({ room: "dialog:1" });
    ws.receive(event("dialog:1", 1));
    expect(got()).toEqual([]);
    expect(client.position("dialog:1")).toBeUndefined();
  });

  it("queues subscribes made before connecting", async () => {
    const { client } = record();
    void client.subscribe("dialog:1");
    const ws = await up(client);
    expect(ws.lastOf("subscribe")).toMatchObject({ room: "dialog:1" });
  });

  it("reports the state changes", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const { client } = record();
    const states: string[] = [];
    client.on("state", (s) => states.push(s.status === "disconnected" ? `${s.status}:${s.reason}` : s.status));
    const ws = await up(client);
    ws.serverClose(1006);
    expect(client.state).toMatchObject({ status: "disconnected", reason: "network", retryAt: Date.now() + 250 });
    expect(states).toEqual(["connecting", "connected", "disconnected:network"]);
  });
});
