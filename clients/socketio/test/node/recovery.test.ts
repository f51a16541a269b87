// Connection-state recovery where it holds and where it cannot: a Redis-mode node killed
// (SIGKILL) and started again, events published meanwhile through another node: recovered, the
// missed ones replayed once and in order, the dialog room restored. The same with a history too
// small for the gap (ROOMCAST_HISTORY_SIZE=5): a new session (recovered false), only the user:
// and org: rooms joined. A node on the embedded broker keeps its records in memory: restarted, a
// new session. And a Redis that lost every key under a live session: the rooms are subscribed
// again by the server and the app is told to reload them (roomcast:reload).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Gateway, type Redis, startGateway, startRedis, tempDir, until } from "../helpers/procs.js";
import { Api, ask, client, closeAll, connected, type Rec, seq } from "../helpers/sio.js";

const dir = tempDir("sio-recovery");
const bare = tempDir("sio-bare");
let redis: Redis;
let volatile: Redis;
const gateways: Gateway[] = [];
const recs: Rec[] = [];

beforeAll(async () => {
  [redis, volatile] = await Promise.all([startRedis(dir.path), startRedis(bare.path, { aof: false })]);
});

afterAll(async () => {
  closeAll(recs);
  await Promise.all(gateways.map((g) => g.stop()));
  await Promise.all([redis?.stop(), volatile?.stop()]);
  dir.remove();
  bare.remove();
});

async function nodes(env: Record<string, string>, ...ids: string[]): Promise<Gateway[]> {
  const started = await Promise.all(ids.map((id) => startGateway({ ...env, ROOMCAST_NODE_ID: id })));
  gateways.push(...started);
  return started;
}

function open(url: string, user: string): Rec {
  const rec = client(url, user, { reconnectionDelay: 100, reconnectionDelayMax: 300 });
  recs.push(rec);
  return rec;
}

/**
 * Connects `user` to `a`, joins dialog:<chat>, gets `live` events, then kills `a`, publishes
 * `missed` events to the dialog and 2 to the user's room through `b`, and starts `a` again.
 */
async function killedAcrossAGap(a: Gateway, b: Gateway, user: string, chat: string, missed: number) {
  const api = new Api(b.http);
  await api.members(`dialog:${chat}`, [user]);
  const rec = open(a.http, user);
  await connected(rec);
  expect(await ask(rec, "subscribe:chat", { chatId: chat })).toMatchObject({ type: "ok" });
  for (const n of seq(3)) await api.publish({ room: `dialog:${chat}`, event: "message:new", data: { n } });
  await until("the live events", () => rec.numbers("message:new").length === 3);
  await a.stop("SIGKILL");
  await until(`${user} disconnected`, () => rec.disconnects.length === 1);
  for (const n of seq(missed, 4)) await api.publish({ room: `dialog:${chat}`, event: "message:new", data: { n } });
  for (const n of seq(2)) await api.publish({ room: `user:${user}`, event: "user:notification", data: { n } });
  await a.restart();
  await connected(rec, 2);
  return { rec, api };
}

describe("recovery", () => {
  it("Redis mode: a node killed and started again; recovered, the missed events replayed once, the dialog restored", async () => {
    const [a, b] = await nodes({ ROOMCAST_REDIS_URL: redis.url }, "ra", "rb");
    const { rec, api } = await killedAcrossAGap(a as Gateway, b as Gateway, "ru1", "r1", 20);
    expect(rec.connects[1]?.recovered).toBe(true);
    await until(
      "the replay",
      () => rec.numbers("message:new").length >= 23 && rec.numbers("user:notification").length >= 2,
    );
    // The dialog room is live again (restored, not re-subscribed by the app).
    await api.publish({ room: "dialog:r1", event: "message:new", data: { n: 24 } });
    await until("the next live event", () => rec.numbers("message:new").length >= 24);
    expect(rec.numbers("message:new")).toEqual(seq(24));
    expect(rec.numbers("user:notification")).toEqual(seq(2));
    expect(rec.data("roomcast:reload")).toEqual([]);
  });

  it("Redis mode, history too small for the gap (5 < 20): a new session, only user: and org: rooms joined", async () => {
    const [a, b] = await nodes({ ROOMCAST_REDIS_URL: redis.url, ROOMCAST_HISTORY_SIZE: "5" }, "ha", "hb");
    const { rec, api } = await killedAcrossAGap(a as Gateway, b as Gateway, "hu1", "h1", 20);
    expect(rec.connects[1]?.recovered).toBe(false);
    // Nothing of the gap is replayed; the dialog is not joined; the user's room is (from now).
    await api.publish({ room: "dialog:h1", event: "message:new", data: { n: 24 } });
    await api.publish({ room: "user:hu1", event: "user:notification", data: { n: 3 } });
    await until("the user room's event", () => rec.numbers("user:notification").includes(3));
    expect(rec.numbers("message:new")).toEqual(seq(3));
    expect(rec.numbers("user:notification")).toEqual([3]);
    expect(await ask(rec, "unsubscribe:chat", { chatId: "h1" })).toMatchObject({ type: "error", code: "not_found" });
    // The app reloads and subscribes again.
    expect(await ask(rec, "subscribe:chat", { chatId: "h1" })).toMatchObject({ type: "ok", offset: 24 });
  });

  it("embedded broker: the records live in the node's memory; restarted, a new session", async () => {
    const [e] = await nodes({}, "em");
    const rec = open((e as Gateway).http, "eu1");
    await connected(rec);
    await (e as Gateway).restart();
    await connected(rec, 2);
    expect(rec.connects.map((c) => c.recovered)).toEqual([false, false]);
  });

  it("Redis lost every key under a live session: the server subscribes the rooms again and sends roomcast:reload", async () => {
    const [v] = await nodes({ ROOMCAST_REDIS_URL: volatile.url }, "va");
    const api = new Api((v as Gateway).http);
    await api.members("dialog:v1", ["vu1"]);
    const rec = open((v as Gateway).http, "vu1");
    await connected(rec);
    const joined = await ask(rec, "subscribe:chat", { chatId: "v1" });
    for (const n of seq(3)) await api.publish({ room: "dialog:v1", event: "message:new", data: { n } });
    await until("the live events", () => rec.numbers("message:new").length === 3);
    // Restarted without persistence: epochs, history, member sets and session records are gone.
    await volatile.restart();
    await api.members("dialog:v1", ["vu1"]);
    const reloaded = () => rec.data("roomcast:reload").some((r) => (r as { room: string }).room === "dialog:v1");
    await until("roomcast:reload for the dialog", reloaded, 30_000);
    const reload = rec.data("roomcast:reload").find((r) => (r as { room: string }).room === "dialog:v1") as {
      room: string;
      offset: number;
      epoch: string;
    };
    expect(reload.epoch).not.toBe(joined.epoch);
    expect(typeof reload.offset).toBe("number");
    // Still the same connection, and the dialog live in its new epoch.
    await api.publish({ room: "dialog:v1", event: "message:new", data: { n: 4 } });
    await until("the next event", () => rec.numbers("message:new").length === 4);
    expect(rec.numbers("message:new")).toEqual(seq(4));
    expect(rec.connects).toHaveLength(1);
    console.log(`reload: ${JSON.stringify(rec.data("roomcast:reload"))}`);
  });
});
