// Presence and delivery receipts against two real nodes on one real Redis: the member list and
// the counts across both nodes, `join`/`leave` once per user (never one's own) and after a
// user's disconnect, presence asked for again after a reconnect (and the `subscribed` snapshot
// that resyncs the list); receipts end to end: `ack`s become coalesced `delivered` events in the
// Redis stream `roomcast:events`, up to the highest offset, also for an event delivered right
// before close().
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Presence } from "../../src/index.js";
import {
  type Gateway,
  type Redis,
  type Resp,
  redisCommand,
  startGateway,
  startRedis,
  tempDir,
  until,
} from "../helpers/procs.js";
import { api, connected, type Recorder, record, seq } from "../helpers/real.js";

const dir = tempDir("presence");
let redis: Redis;
let a: Gateway;
let b: Gateway;
const clients: Recorder[] = [];

beforeAll(async () => {
  redis = await startRedis(dir.path);
  const env = {
    ROOMCAST_REDIS_URL: redis.url,
    ROOMCAST_RECEIPT_ROOMS: "dialog:",
    ROOMCAST_RECEIPT_WINDOW: "200ms",
    ROOMCAST_EVENTS_STREAM: "true",
  };
  [a, b] = await Promise.all([
    startGateway({ ...env, ROOMCAST_NODE_ID: "a" }),
    startGateway({ ...env, ROOMCAST_NODE_ID: "b" }),
  ]);
});

afterAll(async () => {
  for (const c of clients) c.client.close();
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
  dir.remove();
});

function client(user: string, url: Parameters<typeof record>[1], options: Parameters<typeof record>[2] = {}) {
  const rec = record(user, url, options);
  clients.push(rec);
  rec.client.connect();
  return rec;
}

/** Polls presence() until `check` accepts the snapshot. */
function presenceUntil(rec: Recorder, room: string, what: string, check: (p: Presence) => boolean) {
  return until(what, async () => {
    const p = await rec.client.presence(room);
    return check(p) && p;
  });
}

interface Delivered {
  room: string;
  user: string;
  offset: number;
  ids: string[];
}

/** The `delivered` events in the stream, oldest first (XRANGE over a raw RESP socket). */
async function delivered(room: string, user?: string): Promise<Delivered[]> {
  const entries = (await redisCommand(redis.port, "XRANGE", "roomcast:events", "-", "+")) as [string, Resp[]][];
  const out: Delivered[] = [];
  for (const [, fields] of entries) {
    const f = Object.fromEntries(
      fields.flatMap((v, i) => (i % 2 ? [] : [[String(v), String(fields[i + 1])]])),
    ) as Record<string, string>;
    if (f.type !== "delivered" || !f.event) continue;
    const e = JSON.parse(f.event) as Delivered;
    if (e.room === room && (!user || e.user === user)) out.push(e);
  }
  return out;
}

describe("presence", () => {
  it("lists users across both nodes, counts them, and sends join/leave once per user, never one's own", async () => {
    const room = "dialog:p1";
    await api(a.http).members(room, { add: ["alice", "bob"] });
    const alice = client("alice", a.ws);
    await connected(alice);
    await alice.client.subscribe(room, { presence: true });
    // Presence is written to Redis in batches (every 20 ms): once alice is in the list, her
    // join is out, and bob (subscribing later) never hears it.
    await presenceUntil(alice, room, "alice in the list", (p) => "alice" in p.members);
    const bob = client("bob", b.ws);
    await connected(bob);
    await bob.client.subscribe(room, { presence: true });
    await until("alice sees bob join", () => alice.presence[room]?.includes("join bob"));

    const both = { alice: { connections: 1 }, bob: { connections: 1 } };
    const list = await presenceUntil(alice, room, "both in alice's list", (p) => Object.keys(p.members).length === 2);
    expect(list).toEqual({ room, members: both });
    expect(await bob.client.presence(room)).toEqual({ room, members: both });
    expect(await bob.client.presenceStats(room)).toEqual({ room, users: 2, connections: 2 });

    // Bob's second device (on node a) and alice's second device (on node b): users stay two,
    // connections are four, and nobody hears a join of a user already there or of its own.
    const bob2 = client("bob", a.ws);
    const alice2 = client("alice", b.ws);
    await Promise.all([connected(bob2), connected(alice2)]);
    await bob2.client.subscribe(room, { presence: true });
    await alice2.client.subscribe(room, { presence: true });
    await until("four connections", async () => (await alice.client.presenceStats(room)).connections === 4);
    expect(await bob.client.presenceStats(room)).toEqual({ room, users: 2, connections: 4 });
    expect(await alice2.client.presence(room)).toEqual({
      room,
      members: { alice: { connections: 2 }, bob: { connections: 2 } },
    });

    // Bob's devices go one after the other: only the last one is a leave.
    bob2.client.close();
    await until("three connections", async () => (await alice.client.presenceStats(room)).connections === 3);
    expect(alice.presence[room]).toEqual(["join bob"]);
    bob.client.close();
    await until("alice sees bob leave", () => alice.presence[room]?.includes("leave bob"));
    await until("alice2 sees bob leave", () => alice2.presence[room]?.includes("leave bob"));
    expect(await alice.client.presenceStats(room)).toEqual({ room, users: 1, connections: 2 });
    expect(await alice.client.presence(room)).toEqual({ room, members: { alice: { connections: 2 } } });
    // A round trip on each socket, so that anything still on its way has arrived.
    await alice.client.presenceStats(room);
    await alice2.client.presenceStats(room);
    expect(alice.presence[room]).toEqual(["join bob", "leave bob"]);
    expect(alice2.presence[room]).toEqual(["leave bob"]);
    expect(bob.presence[room] ?? []).toEqual([]);
    expect(bob2.presence[room] ?? []).toEqual([]);
    alice2.client.close();
  });

  it("sends leave after a user is disconnected by the backend, and refuses presence outside presence rooms", async () => {
    const room = "dialog:p3";
    const rc = api(b.http);
    await rc.members(room, { add: ["cleo", "dora"] });
    await rc.members("notpresence:1", { add: ["cleo"] });
    const cleo = client("cleo", a.ws);
    const dora = client("dora", b.ws);
    await Promise.all([connected(cleo), connected(dora)]);
    await cleo.client.subscribe(room, { presence: true });
    await dora.client.subscribe(room);
    await until("cleo sees dora join", () => cleo.presence[room]?.includes("join dora"));
    await rc.disconnect("dora", 4003);
    await until("cleo sees dora leave", () => cleo.presence[room]?.includes("leave dora"));
    expect(cleo.presence[room]).toEqual(["join dora", "leave dora"]);
    await until("dora gone from the list", async () => {
      const p = await cleo.client.presence(room);
      return Object.keys(p.members).join() === "cleo";
    });
    // A room that keeps no presence: the subscribe with presence and presence() are refused.
    await expect(cleo.client.subscribe("notpresence:1", { presence: true })).rejects.toMatchObject({
      code: "bad_request",
    });
    await cleo.client.subscribe("notpresence:1");
    await expect(cleo.client.presence("notpresence:1")).rejects.toMatchObject({ code: "bad_request" });
    await expect(cleo.client.presence("dialog:never-joined")).rejects.toMatchObject({ code: "forbidden" });
  });

  it("asks for presence again after a reconnect; a snapshot on subscribed resyncs what the gap missed", async () => {
    const room = "dialog:p2";
    await api(a.http).members(room, { add: ["ann", "dan", "eve"] });
    // Ann starts on node a and comes back on node b.
    let k = 0;
    const ann = client("ann", () => [a.ws, b.ws][k++ % 2] as string);
    const snapshots: Presence[] = [];
    ann.client.on("subscribed", (j) => {
      if (j.room === room) void ann.client.presence(room).then((p) => snapshots.push(p));
    });
    await connected(ann);
    await ann.client.subscribe(room, { presence: true });
    await until("the first snapshot", () => snapshots.length === 1);

    ann.hold();
    await api(a.http).disconnect("ann", 4008);
    await ann.held();
    // Dan comes while ann is away: the join is not sent to her.
    const dan = client("dan", a.ws);
    await connected(dan);
    await dan.client.subscribe(room);
    await presenceUntil(dan, room, "dan in the room", (p) => "dan" in p.members);
    ann.release();
    await connected(ann, 2);
    expect(ann.nodes).toEqual(["a", "b"]);
    await until("a snapshot after the resubscribe", () => snapshots.length === 2);
    expect(snapshots[1]?.members.dan).toEqual({ connections: 1 });
    expect(ann.presence[room] ?? []).toEqual([]);

    // The resubscribe asked for presence again: eve's join and dan's leave reach ann.
    const eve = client("eve", a.ws);
    await connected(eve);
    await eve.client.subscribe(room);
    await until("ann sees eve join", () => ann.presence[room]?.includes("join eve"));
    dan.client.close();
    await until("ann sees dan leave", () => ann.presence[room]?.includes("leave dan"));
    expect(ann.presence[room]).toEqual(["join eve", "leave dan"]);
  });
});

describe("receipts", () => {
  it("turns acks into coalesced delivered events in the stream, up to the highest offset", async () => {
    const room = "dialog:r1";
    const rc = api(a.http);
    await rc.members(room, { add: ["rita", "sam"] });
    const rita = client("rita", a.ws, { receiptInterval: 100 });
    const sam = client("sam", b.ws);
    await Promise.all([connected(rita), connected(sam)]);
    await rita.client.subscribe(room, { receipts: true });
    await sam.client.subscribe(room);
    const N = 40;
    let last = 0;
    for (const n of seq(N)) {
      last = (await rc.publish({ room, event: "message:new", data: n, id: `r1-${n}` })).offset;
      await new Promise((r) => setTimeout(r, 10));
    }
    await until("every event at rita and sam", () => rita.data(room).length === N && sam.data(room).length === N);
    await until("rita's receipt of the last event", async () =>
      (await delivered(room, "rita")).some((d) => d.offset === last),
    );
    const receipts = await delivered(room, "rita");
    const offsets = receipts.map((d) => d.offset);
    console.log(`receipts: ${N} events, ${receipts.length} delivered events (offsets ${offsets.join(",")})`);
    // Coalesced: an ack at most every 100 ms, receipts every 200 ms.
    expect(receipts.length).toBeLessThan(N / 2);
    expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(Math.max(...offsets)).toBe(last);
    expect(receipts.flatMap((d) => d.ids)).toEqual(seq(N).map((n) => `r1-${n}`));
    // Sam did not ask for receipts; nobody acked what rita did not get.
    expect(await delivered(room, "sam")).toEqual([]);
    expect(rita.errors).toEqual([]);
  });

  it("sends the last receipt before close() and none for what came after", async () => {
    const room = "dialog:r2";
    const rc = api(b.http);
    await rc.members(room, { add: ["tom"] });
    const tom = client("tom", b.ws, { receiptInterval: 60_000 });
    await connected(tom);
    await tom.client.subscribe(room, { receipts: true });
    const first = await rc.publish({ room, event: "message:new", data: 1, id: "r2-1" });
    await until("the first receipt", async () => (await delivered(room, "tom")).length === 1);
    // The second event is acked by the close right after it reaches the app, long before the
    // 60 s interval; the third is published after the close and never acked.
    tom.client.on("event", (e) => {
      if (e.room === room && e.data === 2) tom.client.close();
    });
    const second = await rc.publish({ room, event: "message:new", data: 2, id: "r2-2" });
    await until("tom closed", () => tom.client.state.status === "disconnected");
    await rc.publish({ room, event: "message:new", data: 3, id: "r2-3" });
    await until("the receipt sent on close", async () => (await delivered(room, "tom")).length === 2);
    const receipts = await delivered(room, "tom");
    expect(receipts.map((d) => [d.offset, d.ids])).toEqual([
      [first.offset, ["r2-1"]],
      [second.offset, ["r2-2"]],
    ]);
    await new Promise((r) => setTimeout(r, 500));
    expect((await delivered(room, "tom")).length).toBe(2);
  });
});
