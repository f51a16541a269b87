// The client against real roomcast nodes on the embedded broker: delivery and emit, recovery of a
// gap across a reconnect (dialog and user: rooms, the latter through `positions`), a history too
// short (reload), an epoch change after a node restart (reload), member removal (removed),
// a 3-second token refreshed across its expiry without a reconnect, and 4003.
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signToken } from "../../src/server.js";
import { type Gateway, SECRET, startGateway, until } from "../helpers/procs.js";
import { api, connected, type Recorder, record, seq } from "../helpers/real.js";

const nodes: Gateway[] = [];
const clients: Recorder[] = [];
afterAll(async () => {
  for (const c of clients) c.client.close();
  await Promise.all(nodes.map((n) => n.stop()));
});

async function node(env: Record<string, string> = {}): Promise<Gateway> {
  const gw = await startGateway({ ROOMCAST_NODE_ID: `emb${nodes.length}`, ...env });
  nodes.push(gw);
  return gw;
}

function client(user: string, gw: Gateway, options: Parameters<typeof record>[2] = {}): Recorder {
  const rec = record(user, gw.ws, options);
  clients.push(rec);
  rec.client.connect();
  return rec;
}

describe("embedded broker", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await node();
  });

  it("delivers published events once and in order, and emits to the other member only", async () => {
    const rc = api(gw.http);
    await rc.members("dialog:chat", { add: ["alice", "bob"] });
    const alice = client("alice", gw);
    const bob = client("bob", gw);
    await Promise.all([alice.client.subscribe("dialog:chat"), bob.client.subscribe("dialog:chat")]);
    for (const n of seq(30)) await rc.publish({ room: "dialog:chat", event: "message:new", data: n, id: `chat-${n}` });
    await until(
      "30 events at both",
      () => alice.data("dialog:chat").length === 30 && bob.data("dialog:chat").length === 30,
    );
    expect(alice.data("dialog:chat")).toEqual(seq(30));
    expect(bob.data("dialog:chat")).toEqual(seq(30));
    // A duplicate publish (same id) is not delivered again.
    await rc.publish({ room: "dialog:chat", event: "message:new", data: 1, id: "chat-1" });
    await rc.publish({ room: "dialog:chat", event: "message:new", data: 31, id: "chat-31" });
    await until("event 31", () => bob.data("dialog:chat").length === 31);
    expect(bob.data("dialog:chat")).toEqual(seq(31));

    // Messages alice sent herself are kept from her (exclude_user): her offsets jump, with no
    // resubscribe and nothing lost after them.
    for (const n of seq(6, 32)) {
      await rc.publish({
        room: "dialog:chat",
        event: "message:new",
        data: n,
        id: `chat-${n}`,
        excludeUser: n % 2 ? "alice" : undefined,
      });
    }
    await until(
      "event 37 at both",
      () => bob.data("dialog:chat").length === 37 && alice.data("dialog:chat").length === 34,
    );
    expect(bob.data("dialog:chat")).toEqual(seq(37));
    expect(alice.data("dialog:chat")).toEqual([...seq(31), 32, 34, 36]);
    expect(alice.subscribes).toBe(1);

    expect(alice.client.emit("dialog:chat", "typing:start", { draft: true })).toBe(true);
    await until("bob sees alice typing", () => bob.ephemeral.length === 1);
    expect(bob.ephemeral).toEqual([
      { room: "dialog:chat", event: "typing:start", data: { draft: true }, from: "alice" },
    ]);
    // The sender never gets its own emit; a round trip through the same socket proves it had time to.
    await rc.publish({ room: "user:alice", event: "marker", data: null, id: "marker-1" });
    await until("alice's marker", () => alice.events.some((e) => e.id === "marker-1"));
    expect(alice.ephemeral).toEqual([]);
    expect(alice.reloads).toEqual([]);
  });

  it("recovers what was published while it reconnected, in dialog:, user: and org: rooms, exactly once", async () => {
    const rc = api(gw.http);
    await rc.members("dialog:gap", { add: ["carol"] });
    // carol's org room gets nothing before the gap: only `positions` in connected gives it a since.
    const carol = client("carol", gw, { org: "carol-org" });
    await carol.client.subscribe("dialog:gap");
    for (const n of seq(5)) await rc.publish({ room: "dialog:gap", event: "m", data: n, id: `gap-${n}` });
    await rc.publish({ room: "user:carol", event: "n", data: 1, id: "carol-1" });
    await until(
      "the first events",
      () => carol.data("dialog:gap").length === 5 && carol.data("user:carol").length === 1,
    );

    carol.hold();
    await rc.disconnect("carol", 4008);
    await carol.held();
    for (const n of seq(15, 6)) await rc.publish({ room: "dialog:gap", event: "m", data: n, id: `gap-${n}` });
    for (const n of seq(4, 2)) await rc.publish({ room: "user:carol", event: "n", data: n, id: `carol-${n}` });
    for (const n of seq(3)) await rc.publish({ room: "org:carol-org", event: "o", data: n, id: `org-${n}` });
    carol.release();
    await connected(carol, 2);
    await until(
      "the missed events",
      () =>
        carol.data("dialog:gap").length >= 20 &&
        carol.data("user:carol").length >= 5 &&
        carol.data("org:carol-org").length >= 3,
    );
    // Live ones after the recovered ones, still in order.
    await rc.publish({ room: "dialog:gap", event: "m", data: 21, id: "gap-21" });
    await until("event 21", () => carol.data("dialog:gap").length >= 21);
    expect(carol.data("dialog:gap")).toEqual(seq(21));
    expect(carol.data("user:carol")).toEqual(seq(5));
    expect(carol.data("org:carol-org")).toEqual(seq(3));
    expect(carol.reloads).toEqual([]);
    expect(
      carol.states.filter((s) => s.status === "disconnected").map((s) => s.status === "disconnected" && s.code),
    ).toEqual([4008]);
  });

  it("says reload (with the new position) when the history no longer reaches back", async () => {
    const short = await node({ ROOMCAST_HISTORY_SIZE: "5" });
    const rc = api(short.http);
    await rc.members("dialog:short", { add: ["dave"] });
    const dave = client("dave", short);
    await dave.client.subscribe("dialog:short");
    for (const n of seq(3)) await rc.publish({ room: "dialog:short", event: "m", data: n, id: `s-${n}` });
    await until("3 events", () => dave.data("dialog:short").length === 3);

    dave.hold();
    await rc.disconnect("dave", 4008);
    await dave.held();
    let last = { offset: 0, epoch: "" };
    for (const n of seq(20, 4)) last = await rc.publish({ room: "dialog:short", event: "m", data: n, id: `s-${n}` });
    dave.release();
    await until("the reload event", () => dave.reloads.length === 1);
    expect(dave.reloads).toEqual([{ room: "dialog:short", offset: last.offset, epoch: last.epoch }]);
    expect(dave.client.position("dialog:short")).toEqual({ offset: last.offset, epoch: last.epoch });
    await rc.publish({ room: "dialog:short", event: "m", data: 24, id: "s-24" });
    await until("the live event after the reload", () => dave.data("dialog:short").length === 4);
    // Nothing old was sent after the reload: the app reloads it from its backend.
    expect(dave.data("dialog:short")).toEqual([1, 2, 3, 24]);
  });

  it("says removed when the backend removes the user from the room, and delivers nothing more", async () => {
    const rc = api(gw.http);
    await rc.members("dialog:rm", { add: ["erin", "frank"] });
    const erin = client("erin", gw);
    const frank = client("frank", gw);
    await Promise.all([erin.client.subscribe("dialog:rm"), frank.client.subscribe("dialog:rm")]);
    await rc.members("dialog:rm", { remove: ["frank"] });
    await until("frank's removed event", () => frank.removed.length === 1);
    expect(frank.removed).toEqual(["dialog:rm"]);
    await rc.publish({ room: "dialog:rm", event: "m", data: 1, id: "rm-1" });
    await until("erin's event", () => erin.data("dialog:rm").length === 1);
    await rc.publish({ room: "user:frank", event: "marker", data: null, id: "frank-marker" });
    await until("frank's marker", () => frank.events.some((e) => e.id === "frank-marker"));
    expect(frank.data("dialog:rm")).toEqual([]);
    expect(frank.client.position("dialog:rm")).toBeUndefined();
  });

  it("keeps a 3-second token's connection open across several expiries with refresh", async () => {
    const strict = await node({ ROOMCAST_JWT_LEEWAY: "0s" });
    // Control: the same node closes a connection whose 3-second token is not refreshed, with 4001.
    const raw = new WebSocket(`${strict.ws}?token=${signToken({ sub: "ctl", ttl: 3 }, SECRET)}`);
    const rawClose = new Promise<number>((ok) => raw.on("close", (code) => ok(code)));
    const grace = client("grace", strict, { ttl: 3 });
    await connected(grace);
    const firstExp = JSON.parse(Buffer.from(String(grace.tokens[0]?.split(".")[1]), "base64url").toString())
      .exp as number;
    expect(await rawClose).toBe(4001);
    await until("three expiries of the first token", () => Date.now() > (firstExp + 6) * 1000, 15_000);
    expect(grace.nodes.length).toBe(1);
    expect(grace.states.filter((s) => s.status !== "connected").map((s) => s.status)).toEqual(["connecting"]);
    expect(grace.tokens.length).toBeGreaterThanOrEqual(4);
    await api(strict.http).publish({ room: "user:grace", event: "still-here", data: null, id: "g-1" });
    await until("an event on the refreshed connection", () => grace.events.length === 1);
    expect(grace.errors).toEqual([]);
  });

  it("stops after 4003 when getToken() has no other token", async () => {
    const token = signToken({ sub: "heidi", org: "o1", ttl: 600 }, SECRET);
    const heidi = client("heidi", gw, { getToken: () => token });
    await connected(heidi);
    const { closed } = await api(gw.http).disconnect("heidi");
    expect(closed).toBe(1);
    await until("heidi stopped", () => heidi.client.state.status === "disconnected");
    expect(heidi.client.state).toEqual({ status: "disconnected", reason: "forbidden", code: 4003, attempt: 0 });
    expect(heidi.errors.map((e) => e.code)).toEqual(["closed"]);
  });

  it("reloads after a node restart changed the epoch (embedded broker), also with a subscription token", async () => {
    const solo = await node();
    const ivan = client("ivan", solo);
    const subToken = () => signToken({ sub: "ivan", room: "dialog:tok", ttl: 600 }, SECRET);
    await ivan.client.subscribe("dialog:tok", { token: subToken });
    const rc = api(solo.http);
    await rc.publish({ room: "dialog:tok", event: "m", data: 1, id: "t-1" });
    await rc.publish({ room: "user:ivan", event: "m", data: 1, id: "i-1" });
    await until("both events", () => ivan.events.length === 2);
    const before = ivan.client.position("user:ivan");
    await solo.restart();
    await connected(ivan, 2);
    await until("three reloads", () => ivan.reloads.length === 3);
    expect(ivan.reloads.map((r) => r.room).sort()).toEqual(["dialog:tok", "org:o1", "user:ivan"]);
    expect(ivan.reloads[0]?.epoch).not.toBe(before?.epoch);
    await rc.publish({ room: "dialog:tok", event: "m", data: 2, id: "t-2" });
    await until("the event after the restart", () => ivan.data("dialog:tok").length === 2);
    expect(ivan.data("dialog:tok")).toEqual([1, 2]);
  });
});
