// Three nodes behind the local nginx (deploy/local/cluster.sh), which sends every /socket.io/
// request round-robin to the next node: no sticky sessions. First, polling and the upgrade must
// work through it (a session's requests reach nodes that do not hold it and are forwarded).
// Then a node drained (SIGTERM, as in a deploy): its sessions come back on the others, recovered.
// Then the seed 003 flow: a backend publishes each message with POST /api/publish and
// exclude_user = its sender; the node holding a polling-only receiver's session is killed
// (SIGKILL) in the middle; every receiver gets every message exactly once and in order, recovered
// on another node, and the sender never gets its own.
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Cluster, startCluster } from "../helpers/cluster.js";
import { until } from "../helpers/procs.js";
import { Api, ask, client, closeAll, connected, openConnections, type Rec, seq } from "../helpers/sio.js";

let cluster: Cluster;
let api: Api;
const recs: Rec[] = [];

beforeAll(async () => {
  cluster = await startCluster();
  api = new Api(cluster.lb);
});

afterAll(() => {
  closeAll(recs);
  cluster?.stop();
});

function open(user: string, transports?: string[]): Rec {
  const rec = client(cluster.lb, user, {
    ...(transports ? { transports } : {}),
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
  });
  recs.push(rec);
  return rec;
}

const count = (ids: string[], id: string) => ids.filter((x) => x === id).length;

/** Opens `user`'s socket alone (no other session opening or closing) and returns the node holding it. */
async function openAlone(user: string, transports?: string[]): Promise<{ rec: Rec; node: string }> {
  const live = () => cluster.nodes.filter((n) => cluster.alive(n.id));
  const base = await openConnections(live());
  const rec = open(user, transports);
  await connected(rec);
  const node = await until(`${user}'s node`, async () => {
    const now = await openConnections(live());
    const grew = cluster.nodes.filter((n) => count(now, n.id) > count(base, n.id));
    return now.length === base.length + 1 && grew.length === 1 ? grew[0]?.id : undefined;
  });
  return { rec, node: node as string };
}

/** Waits until the nodes hold no session (the closed ones are gone). */
const noSessions = () =>
  until(
    "no session open",
    async () => (await openConnections(cluster.nodes.filter((n) => cluster.alive(n.id)))).length === 0,
  );

/** Publishes `count` numbered events to `room` (15 ms apart), calling `at(n)` after each. */
async function publishNumbered(room: string, total: number, at: (n: number) => void, extra = {}): Promise<void> {
  for (const n of seq(total)) {
    await api.publish({ room, event: "message:new", data: { n }, id: `${room}#${n}`, ...extra });
    at(n);
    await new Promise((r) => setTimeout(r, 15));
  }
}

it("round-robin nginx, no sticky sessions: default transports and polling only; every event once, in order", async () => {
  const started = Date.now();
  const before = cluster.upstreams("/socket.io/").length;
  const users = ["rr-d1", "rr-d2", "rr-d3", "rr-p1", "rr-p2", "rr-p3"];
  await api.members("dialog:rr", users);
  const clients = users.map((u) => open(u, u.includes("-p") ? ["polling"] : undefined));
  await Promise.all(clients.map((c) => connected(c, 1, 15_000)));
  for (const c of clients) {
    expect(await ask(c, "subscribe:chat", { chatId: "rr" })).toMatchObject({ type: "ok", room: "dialog:rr" });
  }
  const N = 60;
  for (const n of seq(N)) {
    await api.publish({ room: "dialog:rr", event: "message:new", data: { n } });
    await api.publish({ room: `user:${users[n % users.length]}`, event: "user:notification", data: { n } });
  }
  // A typing relay across nodes, from a polling client to everyone else.
  expect(await ask(clients[3] as Rec, "typing:start", { chatId: "rr" })).toMatchObject({ type: "ok" });
  const mine = (i: number) => seq(N).filter((n) => n % users.length === i);
  await until("every event at every client", () =>
    clients.every(
      (c, i) =>
        c.numbers("message:new").length >= N &&
        c.numbers("user:notification").length >= mine(i).length &&
        (i === 3 || c.data("typing:start").length === 1),
    ),
  );
  users.forEach((u, i) => {
    const c = clients[i] as Rec;
    expect(c.numbers("message:new"), u).toEqual(seq(N));
    expect(c.numbers("user:notification"), u).toEqual(mine(i));
    expect(c.connects, u).toHaveLength(1);
    expect(c.disconnects, u).toEqual([]);
    if (i !== 3)
      expect(c.got.find((g) => g.event === "typing:start")?.args[1], u).toEqual({ from: "rr-p1", room: "dialog:rr" });
  });
  for (const c of clients.slice(0, 3)) expect(c.socket.io.engine.transport.name).toBe("websocket");
  for (const c of clients.slice(3)) expect(c.socket.io.engine.transport.name).toBe("polling");
  for (const c of clients) c.socket.close();
  await noSessions();
  // nginx really spread each session's requests: polls, pushes and upgrades reached all three nodes.
  const lines = cluster.upstreams("/socket.io/").slice(before);
  const spread = new Set(lines.map((l) => l.upstream));
  expect(spread.size).toBe(3);
  expect(lines.filter((l) => l.status !== "200" && l.status !== "101")).toEqual([]);
  console.log(
    `round-robin: ${users.length} clients (3 default, 3 polling), ${N} dialog events + ${N} user events, ` +
      `${lines.length} /socket.io/ requests over ${spread.size} nodes, all delivered once in order; ${Date.now() - started} ms`,
  );
});

it("a node drained (SIGTERM): its sessions close their transports and come back on the others, recovered", async () => {
  const started = Date.now();
  await api.members("dialog:drain", ["erin", "finn"]);
  const { rec: erin, node } = await openAlone("erin");
  const finn = open("finn", ["polling"]);
  await connected(finn);
  for (const c of [erin, finn])
    expect(await ask(c, "subscribe:chat", { chatId: "drain" })).toMatchObject({ type: "ok" });
  const N = 100;
  await publishNumbered("dialog:drain", N, (n) => {
    if (n === 20) cluster.kill(node, "SIGTERM");
  });
  await until("erin back", () => erin.connects.length >= 2 && erin.socket.connected, 20_000);
  await until("every event", () => [erin, finn].every((c) => c.numbers("message:new").length >= N));
  for (const c of [erin, finn]) {
    expect(c.numbers("message:new"), c.user).toEqual(seq(N));
    expect(
      c.connects.slice(1).map((x) => x.recovered),
      c.user,
    ).toEqual(c.connects.slice(1).map(() => true));
    // A drain closes the transport: never a DISCONNECT (the client would not come back).
    expect(c.disconnects.map((d) => d.reason).includes("io server disconnect"), c.user).toBe(false);
  }
  await until(`node ${node} exited`, () => !cluster.alive(node), 20_000);
  console.log(
    `drain: node ${node} drained (SIGTERM) after 20 of ${N} events; erin ${erin.disconnects.map((d) => d.reason).join(",")}, ` +
      `reconnects erin ${erin.connects.length - 1}, finn ${finn.connects.length - 1}; all recovered, each event once and in order; ${Date.now() - started} ms`,
  );
  for (const c of [erin, finn]) c.socket.close();
  await noSessions();
});

it("seed 003: REST publish with exclude_user, a node killed mid-stream; each receiver gets every message once, in order, recovered; the sender none", async () => {
  const started = Date.now();
  const receivers = ["bob", "carol", "dave"];
  await api.members("dialog:3", ["alice", ...receivers]);
  // dave (polling only) first, alone: his session's node is the one killed.
  const { rec: dave, node: held } = await openAlone("dave", ["polling"]);
  const alice = open("alice");
  const carol = open("carol", ["websocket"]);
  const bob = open("bob");
  const all = [alice, bob, carol, dave];
  await Promise.all(all.map((c) => connected(c)));
  for (const c of all) expect(await ask(c, "subscribe:chat", { chatId: 3 })).toMatchObject({ type: "ok" });
  const nodes = await openConnections(cluster.nodes);

  const N = 150;
  let published = 0;
  // alice's messages, sent through the backend's REST API: she has them already.
  const stream = publishNumbered(
    "dialog:3",
    N,
    (n) => {
      published = n;
    },
    { exclude_user: "alice" },
  );
  await until("a third of the stream", () => published >= N / 3);
  cluster.kill(held);
  const killedAt = published;
  await stream;
  await until("dave back", () => dave.connects.length >= 2 && dave.socket.connected, 20_000);
  await until("every message at every receiver", () =>
    [bob, carol, dave].every((c) => c.numbers("message:new").length >= N),
  );
  // Everything the sender could have got arrived by now: a last event to her own room, after it.
  await api.publish({ room: "user:alice", event: "sentinel", data: { n: 1 } });
  await until("alice's sentinel", () => alice.data("sentinel").length === 1, 20_000);
  for (const c of [bob, carol, dave]) {
    expect(c.numbers("message:new"), c.user).toEqual(seq(N));
    expect(
      c.connects.slice(1).map((x) => x.recovered),
      c.user,
    ).toEqual(c.connects.slice(1).map(() => true));
  }
  expect(dave.connects.length).toBeGreaterThanOrEqual(2);
  expect(dave.disconnects[0]?.reason).toMatch(/^transport (close|error)$/);
  expect(dave.socket.io.engine.transport.name).toBe("polling");
  expect(alice.data("message:new")).toEqual([]);
  expect(alice.connects.slice(1).every((x) => x.recovered)).toBe(true);
  const after = await openConnections(cluster.nodes.filter((n) => cluster.alive(n.id)));
  // What dave's requests got from nginx once his node was gone.
  const statuses = cluster.upstreams("/socket.io/").map((l) => l.status);
  console.log(
    `seed 003: ${N} messages (node ${held} killed after ${killedAt}); sessions were on ${nodes.join(",")}, ` +
      `then on ${after.join(",")}; reconnects: ${all.map((c) => `${c.user} ${c.connects.length - 1}`).join(", ")}; ` +
      `each receiver got ${N} once and in order, recovered; alice 0; ${api.retried} publish retries; ` +
      `/socket.io/ statuses seen ${[...new Set(statuses)].join(",")} (${statuses.filter((x) => x !== "200" && x !== "101").length} not 200/101); ${Date.now() - started} ms`,
  );
});
