// The seed 001 app, unchanged on the client side: socket.io-client with `auth: {token}`, the seven
// server events (published by the backend through POST /api/publish to org:, user: and dialog:
// rooms), the four client events (subscribe:chat, unsubscribe:chat, typing:start, typing:stop with
// {chatId}), organisation isolation, the ack replies, roomcast:left / roomcast:error, the generic
// roomcast:* events, and a node configured with its own socketio_events table.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Gateway, SECRET, startGateway, until } from "../helpers/procs.js";
import { Api, ask, client, closeAll, connected, type Rec, signToken } from "../helpers/sio.js";

let gw: Gateway;
let custom: Gateway;
let api: Api;
const recs: Rec[] = [];

beforeAll(async () => {
  [gw, custom] = await Promise.all([
    startGateway({ ROOMCAST_NODE_ID: "s1" }),
    startGateway({
      ROOMCAST_NODE_ID: "s2",
      // The env form of the setting: comma-separated entries.
      ROOMCAST_SOCKETIO_EVENTS:
        "join=subscribe room:{kind}:{id}, leave=unsubscribe room:{kind}:{id}, poke=emit room:{kind}:{id}",
      ROOMCAST_EMIT_EVENTS: "poke",
    }),
  ]);
  api = new Api(gw.http);
});

afterAll(async () => {
  closeAll(recs);
  await Promise.all([gw?.stop(), custom?.stop()]);
});

function open(user: string, org: string, url = gw.http): Rec {
  // The seed app's own client: a static token in `auth`, default transports.
  const rec = client(url, user, { org, give: "static" });
  recs.push(rec);
  return rec;
}

/**
 * Publishes a sentinel to each client's own room and waits for it: everything published before
 * it on this node has been delivered, so what a client did not get by then it never gets.
 */
let sentinels = 0;
async function settle(...clients: Rec[]): Promise<void> {
  const n = ++sentinels;
  for (const c of clients) await api.publish({ room: `user:${c.user}`, event: "sentinel", data: { n } });
  await until("the sentinels", () => clients.every((c) => c.numbers("sentinel").includes(n)));
}

/** Event names a client got since `from`, sentinels left out. */
const names = (c: Rec, from = 0) =>
  c.got
    .slice(from)
    .map((g) => g.event)
    .filter((e) => e !== "sentinel");

describe("seed 001 flow", () => {
  let alice: Rec;
  let bob: Rec;
  let carol: Rec;
  let eve: Rec;

  beforeAll(async () => {
    alice = open("alice", "acme");
    bob = open("bob", "acme");
    carol = open("carol", "acme");
    eve = open("eve", "globex");
    await Promise.all([alice, bob, carol, eve].map((c) => connected(c)));
    await api.members("dialog:42", ["alice", "bob"]);
  });

  it("subscribe:chat joins dialog:<chatId> for members only; the ack carries the reply", async () => {
    const a = await ask(alice, "subscribe:chat", { chatId: 42 });
    expect(a).toMatchObject({ type: "ok", room: "dialog:42", offset: 0 });
    expect(typeof a.epoch).toBe("string");
    expect(await ask(bob, "subscribe:chat", { chatId: 42 })).toMatchObject({ type: "ok", room: "dialog:42" });
    expect(await ask(carol, "subscribe:chat", { chatId: 42 })).toMatchObject({ type: "error", code: "forbidden" });
    expect(await ask(eve, "subscribe:chat", { chatId: 42 })).toMatchObject({ type: "error", code: "forbidden" });
    // Another org's and another user's rooms are never open, whatever the client asks.
    for (const room of ["org:acme", "user:alice"]) {
      expect(await ask(eve, "roomcast:subscribe", { room })).toMatchObject({ type: "error", code: "forbidden" });
    }
    expect(await ask(alice, "subscribe:chat", { chat: 42 })).toMatchObject({ type: "error", code: "bad_request" });
  });

  it("the seven server events reach exactly the right sockets, with the data as published; other orgs get nothing", async () => {
    const from = new Map([alice, bob, carol, eve].map((c) => [c, c.got.length]));
    const published: [string, string, unknown, string?][] = [
      ["org:acme", "chat:new", { id: 42, name: "Support", channel: "whatsapp", status: "open" }],
      // alice sent it through the REST API: the backend keeps it from her (she shows it already).
      ["dialog:42", "message:new", { id: "m1", chatId: 42, content: "hello", fromMe: false }, "alice"],
      ["org:acme", "chat:updated", { id: 42, status: "pending", priority: "high" }],
      ["dialog:42", "messages:read", { chatId: 42, readByUserId: "bob" }, "bob"],
      ["user:alice", "message:status", { messageId: "m1", status: "read", chatId: 42 }],
      ["org:acme", "chat:deleted", { chatId: 41 }],
      ["user:bob", "user:notification", { type: "assigned", message: "You were assigned chat 42" }],
    ];
    for (const [room, event, data, exclude] of published) {
      await api.publish({ room, event, data, ...(exclude ? { exclude_user: exclude } : {}) });
    }
    await settle(alice, bob, carol, eve);
    const got = (c: Rec) => names(c, from.get(c));
    expect(got(alice)).toEqual(["chat:new", "chat:updated", "messages:read", "message:status", "chat:deleted"]);
    expect(got(bob)).toEqual(["chat:new", "message:new", "chat:updated", "chat:deleted", "user:notification"]);
    expect(got(carol)).toEqual(["chat:new", "chat:updated", "chat:deleted"]);
    expect(got(eve)).toEqual([]);
    // Data as published; the last argument is the session's position (a string), and only that.
    for (const c of [alice, bob, carol]) {
      for (const g of c.got.slice(from.get(c)).filter((g) => g.event !== "sentinel")) {
        const sent = published.find(([, e]) => e === g.event);
        expect(g.args).toHaveLength(2);
        expect(g.args[0]).toEqual(sent?.[2]);
        expect(typeof g.args[1]).toBe("string");
      }
    }
  });

  it("typing:start / typing:stop {chatId} reach the other members of the dialog with {from, room}", async () => {
    const from = new Map([alice, bob, carol].map((c) => [c, c.got.length]));
    // As the seed app emits it: no ack.
    alice.socket.emit("typing:start", { chatId: 42 });
    await until("bob sees alice typing", () => bob.data("typing:start").length === 1);
    expect(await ask(alice, "typing:stop", { chatId: 42 })).toEqual({ type: "ok", id: expect.any(Number) });
    await until("bob sees alice stop", () => bob.data("typing:stop").length === 1);
    const typing = bob.got.filter((g) => g.event.startsWith("typing:"));
    expect(typing.map((g) => g.args)).toEqual([
      [{ chatId: 42 }, { from: "alice", room: "dialog:42" }],
      [{ chatId: 42 }, { from: "alice", room: "dialog:42" }],
    ]);
    // carol is not in the dialog: she cannot type into it, and sees nothing.
    expect(await ask(carol, "typing:start", { chatId: 42 })).toMatchObject({ type: "error" });
    await settle(alice, bob, carol);
    expect(names(alice, from.get(alice))).toEqual([]);
    expect(names(carol, from.get(carol))).toEqual([]);
    expect(names(bob, from.get(bob))).toEqual(["typing:start", "typing:stop"]);
  });

  it("unsubscribe:chat leaves the dialog: its events stop, the org's go on", async () => {
    expect(await ask(bob, "unsubscribe:chat", { chatId: 42 })).toMatchObject({ type: "ok", room: "dialog:42" });
    const from = bob.got.length;
    await api.publish({ room: "dialog:42", event: "message:new", data: { id: "m2", chatId: 42 } });
    await api.publish({ room: "org:acme", event: "chat:updated", data: { id: 42 } });
    await until("alice gets m2", () => alice.data("message:new").length === 1);
    await settle(bob);
    expect(names(bob, from)).toEqual(["chat:updated"]);
    expect(await ask(bob, "unsubscribe:chat", { chatId: 42 })).toMatchObject({ type: "error", code: "not_found" });
  });

  it("roomcast:left {room, reason: removed} when the backend removes a member; no events after it", async () => {
    expect(await ask(bob, "subscribe:chat", { chatId: 42 })).toMatchObject({ type: "ok" });
    await api.members("dialog:42", [], ["bob"]);
    await until("bob's roomcast:left", () => bob.data("roomcast:left").length === 1);
    expect(bob.data("roomcast:left")).toEqual([{ room: "dialog:42", reason: "removed" }]);
    const from = bob.got.length;
    await api.publish({ room: "dialog:42", event: "message:new", data: { id: "m3", chatId: 42 } });
    await until("alice gets m3", () => alice.data("message:new").length === 2);
    await settle(bob);
    expect(names(bob, from)).toEqual([]);
    expect(await ask(bob, "subscribe:chat", { chatId: 42 })).toMatchObject({ type: "error", code: "forbidden" });
  });

  it("roomcast:subscribe takes a subscription token and since; roomcast:emit only emit_events", async () => {
    const token = signToken({ sub: "carol", room: "dialog:99" }, SECRET);
    expect(await ask(carol, "roomcast:subscribe", { room: "dialog:99", token })).toMatchObject({
      type: "ok",
      room: "dialog:99",
    });
    // alice leaves dialog:42, misses two events, and joins again from where she was: the two are
    // replayed after the ack.
    expect(await ask(alice, "unsubscribe:chat", { chatId: 42 })).toMatchObject({ type: "ok" });
    const first = await api.publish({ room: "dialog:42", event: "message:new", data: { id: "m4", n: 4 } });
    await api.publish({ room: "dialog:42", event: "message:new", data: { id: "m5", n: 5 } });
    const since = { offset: first.offset - 1, epoch: first.epoch };
    const before = alice.numbers("message:new").length;
    const reply = await ask(alice, "roomcast:subscribe", { room: "dialog:42", since });
    expect(reply).toMatchObject({ type: "ok", room: "dialog:42", recovered: true });
    await until("the two replayed", () => alice.numbers("message:new").length >= before + 2);
    expect(alice.numbers("message:new").slice(before)).toEqual([4, 5]);
    expect(
      await ask(alice, "roomcast:emit", { room: "dialog:42", event: "typing:start", data: { chatId: 42 } }),
    ).toMatchObject({ type: "ok" });
    expect(
      await ask(alice, "roomcast:emit", { room: "dialog:42", event: "message:new", data: { chatId: 42 } }),
    ).toMatchObject({ type: "error", code: "forbidden" });
  });

  it("an unknown event: bad_request in its ack, or roomcast:error without one", async () => {
    expect(await ask(alice, "chat:create", { name: "x" })).toMatchObject({ type: "error", code: "bad_request" });
    const from = alice.got.length;
    alice.socket.emit("chat:create", { name: "x" });
    await until("roomcast:error", () => alice.data("roomcast:error").length === 1);
    expect(names(alice, from)).toEqual(["roomcast:error"]);
    expect(alice.data("roomcast:error")[0]).toMatchObject({ type: "error", code: "bad_request" });
  });
});

describe("socketio_events", () => {
  it("a node's own table (ROOMCAST_SOCKETIO_EVENTS, comma-separated) maps its events; the defaults are gone", async () => {
    const capi = new Api(custom.http);
    await capi.members("room:team:7", ["ann", "ben"]);
    const ann = client(custom.http, "ann");
    const ben = client(custom.http, "ben");
    recs.push(ann, ben);
    await Promise.all([connected(ann), connected(ben)]);
    expect(await ask(ann, "join", { kind: "team", id: 7 })).toMatchObject({ type: "ok", room: "room:team:7" });
    expect(await ask(ben, "join", { kind: "team", id: "7" })).toMatchObject({ type: "ok", room: "room:team:7" });
    expect(await ask(ann, "poke", { kind: "team", id: 7, x: 1 })).toMatchObject({ type: "ok" });
    await until("ben is poked", () => ben.data("poke").length === 1);
    expect(ben.got.find((g) => g.event === "poke")?.args).toEqual([
      { kind: "team", id: 7, x: 1 },
      { from: "ann", room: "room:team:7" },
    ]);
    await capi.publish({ room: "room:team:7", event: "message:new", data: { n: 1 } });
    await until("ben's message", () => ben.numbers("message:new").length === 1);
    expect(await ask(ben, "leave", { kind: "team", id: 7 })).toMatchObject({ type: "ok", room: "room:team:7" });
    expect(await ask(ann, "subscribe:chat", { chatId: 7 })).toMatchObject({ type: "error", code: "bad_request" });
  });
});
