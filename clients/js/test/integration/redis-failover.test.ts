// Two nodes on a real Redis (AOF on). Clients spread over both; a publisher sends numbered events
// to several dialog rooms and to every user's own room. Mid-stream node A is killed (SIGKILL), its
// clients reconnect to node B; later Redis is restarted. Every event must arrive exactly once, in
// order per room, with no reload (recovered:false) anywhere. A subscribe made while Redis is down
// is answered `internal` and retried with backoff until it lands.
import { afterAll, beforeAll, expect, it } from "vitest";
import { RoomcastApi } from "../../src/server.js";
import { API_KEY, type Gateway, type Redis, startGateway, startRedis, tempDir, until } from "../helpers/procs.js";
import { connected, type Recorder, record, seq } from "../helpers/real.js";

const ROOMS = ["dialog:r0", "dialog:r1", "dialog:r2", "dialog:r3"];
const USERS = ["u0", "u1", "u2", "u3", "u4", "u5"];
/** Events per dialog room, and per user room. */
const PER_ROOM = 160;
const PER_USER = 60;
/** Pause between two publishes of one room (ms): about 25 events/s per room. */
const PACE = 40;
/** The room u1 subscribes to while Redis is down. */
const LATE = "dialog:late";

const dir = tempDir("failover");
let redis: Redis;
let a: Gateway;
let b: Gateway;
const clients: Recorder[] = [];

beforeAll(async () => {
  redis = await startRedis(dir.path);
  // This Redis runs with appendfsync always, so the nodes may trust it across its restart;
  // without ROOMCAST_REDIS_DURABLE a restart starts every room's epoch anew (clients reload).
  const env = { ROOMCAST_REDIS_URL: redis.url, ROOMCAST_REDIS_DURABLE: "true" };
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

it("delivers every event exactly once, in order, across a node SIGKILL and a Redis restart", async () => {
  const started = Date.now();
  let resubscribes = 0;
  // The publisher counts what it had to retry: proof that the Redis restart hit the stream.
  const failures: string[] = [];
  const counting: typeof fetch = async (input, init) => {
    try {
      const res = await fetch(input, init);
      if (!res.ok) failures.push(String(res.status));
      return res;
    } catch (e) {
      failures.push("network");
      throw e;
    }
  };
  const rc = new RoomcastApi({ url: b.http, apiKey: API_KEY, retries: 40, fetch: counting });
  for (const room of [...ROOMS, LATE]) await rc.members(room, { add: USERS });
  // Each client rotates over both nodes, starting on its own: half begin on a, half on b.
  USERS.forEach((user, i) => {
    let k = i;
    const urls = [a.ws, b.ws];
    const rec = record(user, () => urls[k++ % 2] as string, {
      log: (_, message, fields) => {
        if (message === "subscribe" && fields?.since !== -1) resubscribes++;
      },
    });
    clients.push(rec);
    rec.client.connect();
  });
  await Promise.all(clients.map((c) => connected(c)));
  await Promise.all(clients.flatMap((c) => ROOMS.map((room) => c.client.subscribe(room))));
  const onA = clients.filter((c) => c.nodes[0] === "a");
  expect(onA.length).toBe(3);

  let published = 0;
  const publishRoom = async (room: string, count: number) => {
    for (const n of seq(count)) {
      // A 503 (Redis down) or a lost reply is retried with the same id: delivered once.
      await rc.publish({ room, event: "n", data: n, id: `${room}#${n}` });
      published++;
      await new Promise((r) => setTimeout(r, PACE));
    }
  };
  const stream = Promise.all([
    ...ROOMS.map((room) => publishRoom(room, PER_ROOM)),
    ...USERS.map((user) => publishRoom(`user:${user}`, PER_USER)),
  ]);
  const total = ROOMS.length * PER_ROOM + USERS.length * PER_USER;

  await until("a third of the stream", () => published >= total / 3, 30_000);
  const killedAt = published;
  await a.stop("SIGKILL");
  await until("node a's clients on node b", () => onA.every((c) => c.nodes.length >= 2), 30_000);
  await until("two thirds of the stream", () => published >= (2 * total) / 3, 30_000);
  const restartedAt = published;
  const failedBefore = failures.length;
  let downFor = 0;
  const late = clients[1] as Recorder;
  let lateJoined: Promise<unknown> = Promise.resolve();
  await redis.restart(async () => {
    // Down until the publisher has seen five refusals (it retries each with the same id) and u1's
    // subscribe to a new room was refused (`internal`) and sent again.
    const down = Date.now();
    lateJoined = late.client.subscribe(LATE);
    await until("publishes refused while Redis is down", () => failures.length >= failedBefore + 5, 15_000);
    await until("u1's subscribe retried while Redis is down", () => (late.subscribesTo[LATE] ?? 0) >= 2, 15_000);
    downFor = Date.now() - down;
  });
  await stream;
  await lateJoined;
  for (const n of seq(5)) await rc.publish({ room: LATE, event: "n", data: n, id: `${LATE}#${n}` });
  await until("the late room's events", () => late.data(LATE).length >= 5);
  expect(late.data(LATE)).toEqual(seq(5));

  const complete = () =>
    clients.every(
      (c) => ROOMS.every((room) => c.data(room).length >= PER_ROOM) && c.data(`user:${c.user}`).length >= PER_USER,
    );
  await until("every event at every client", complete, 40_000);

  let deliveries = 0;
  for (const c of clients) {
    for (const room of ROOMS) expect(c.data(room), `${c.user} in ${room}`).toEqual(seq(PER_ROOM));
    expect(c.data(`user:${c.user}`), `${c.user} in its user room`).toEqual(seq(PER_USER));
    expect(c.reloads, `${c.user} reloads`).toEqual([]);
    deliveries += c.events.length;
  }
  for (const c of onA) expect(c.nodes.slice(0, 2)).toEqual(["a", "b"]);
  console.log(
    `failover: ${total} events published (node a killed after ${killedAt}, Redis restarted after ${restartedAt}), ` +
      `${deliveries} deliveries to ${clients.length} clients, all exactly once and in order, 0 reloads; ` +
      `Redis down ${downFor} ms, u1's subscribe sent ${late.subscribesTo[LATE]} times before it landed, ${failures.length} publish attempts retried (${[...new Set(failures)].join(", ")}), ` +
      `${resubscribes} resubscribes with since, node b repaired ${b.proc.output.split("gap repaired").length - 1} room gaps; ` +
      `reconnects: ${clients.map((c) => `${c.user}:${c.nodes.join(">")}`).join(" ")}; ${Date.now() - started} ms`,
  );
  expect(deliveries).toBe(clients.length * ROOMS.length * PER_ROOM + USERS.length * PER_USER + 5);
});
