// Presence with a fake socket: `subscribe` with `presence: true` (again at every resubscribe),
// `join`/`leave` frames as events, `subscribed` at every ok, and presence()/presenceStats() as
// commands whose replies settle promises (the gateway's error code, or `closed` when the
// connection is not there or goes away).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Joined, PresenceChange, RoomcastError } from "../../src/index.js";
import { EPOCH, FakeWebSocket, makeClient, settle, up } from "../helpers/fake-ws.js";

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.all = [];
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const ROOM = "dialog:1";

function okLast(ws: FakeWebSocket, type: string, extra: Record<string, unknown>) {
  const f = ws.lastOf(type);
  ws.receive({ type: "ok", id: f.id, ...extra });
  return f;
}

describe("presence", () => {
  it("subscribes with presence: true only when asked, and again after every reconnect", async () => {
    const { client } = makeClient();
    const subscribed: Joined[] = [];
    client.on("subscribed", (j) => subscribed.push(j));
    const ws = await up(client);
    void client.subscribe("dialog:plain");
    expect(ws.lastOf("subscribe")).toEqual({ type: "subscribe", room: "dialog:plain", id: 1 });
    okLast(ws, "subscribe", { room: "dialog:plain", offset: 0, epoch: EPOCH });
    const joined = client.subscribe(ROOM, { presence: true });
    expect(ws.lastOf("subscribe")).toEqual({ type: "subscribe", room: ROOM, presence: true, id: 2 });
    okLast(ws, "subscribe", { room: ROOM, offset: 3, epoch: EPOCH });
    expect(await joined).toMatchObject({ room: ROOM, offset: 3 });

    vi.spyOn(Math, "random").mockReturnValue(0);
    ws.serverClose(1012);
    await settle();
    const ws2 = await up(client);
    const subs = ws2.frames("subscribe").map((f) => [f.room, f.presence, f.since]);
    expect(subs).toEqual([
      ["dialog:plain", undefined, { offset: 0, epoch: EPOCH }],
      [ROOM, true, { offset: 3, epoch: EPOCH }],
    ]);
    for (const f of ws2.frames("subscribe")) {
      ws2.receive({ type: "ok", id: f.id, room: f.room, offset: 3, epoch: EPOCH, recovered: true });
    }
    expect(subscribed.map((j) => [j.room, j.recovered])).toEqual([
      ["dialog:plain", undefined],
      [ROOM, undefined],
      ["dialog:plain", true],
      [ROOM, true],
    ]);
  });

  it("delivers join and leave of rooms it is in as events, and drops those of others", async () => {
    const { client } = makeClient();
    const seen: [string, PresenceChange][] = [];
    client.on("join", (j) => seen.push(["join", j]));
    client.on("leave", (l) => seen.push(["leave", l]));
    const ws = await up(client);
    void client.subscribe(ROOM, { presence: true });
    okLast(ws, "subscribe", { room: ROOM, offset: 0, epoch: EPOCH });
    ws.receive({ type: "join", room: ROOM, user: "bob" });
    ws.receive({ type: "join", room: "dialog:other", user: "eve" });
    ws.receive({ type: "leave", room: ROOM, user: "bob" });
    client.unsubscribe(ROOM);
    ws.receive({ type: "join", room: ROOM, user: "carol" });
    expect(seen).toEqual([
      ["join", { room: ROOM, user: "bob" }],
      ["leave", { room: ROOM, user: "bob" }],
    ]);
  });

  it("presence() and presenceStats() resolve with the gateway's answer", async () => {
    const { client } = makeClient();
    const ws = await up(client);
    const list = client.presence(ROOM);
    expect(ws.lastOf("presence")).toEqual({ type: "presence", room: ROOM, id: 1 });
    okLast(ws, "presence", { room: ROOM, presence: { u1: { connections: 2 }, bob: { connections: 1 } } });
    expect(await list).toEqual({ room: ROOM, members: { u1: { connections: 2 }, bob: { connections: 1 } } });

    const stats = client.presenceStats(ROOM);
    expect(ws.lastOf("presence_stats")).toEqual({ type: "presence_stats", room: ROOM, id: 2 });
    okLast(ws, "presence_stats", { room: ROOM, users: 2, connections: 3 });
    expect(await stats).toEqual({ room: ROOM, users: 2, connections: 3 });

    // An empty room: no field is an empty list, zero counts.
    const empty = client.presence(ROOM);
    okLast(ws, "presence", { room: ROOM, presence: {} });
    expect(await empty).toEqual({ room: ROOM, members: {} });
  });

  it("rejects with the gateway's error code, and with closed when offline or when the connection drops", async () => {
    const { client } = makeClient();
    const errors: RoomcastError[] = [];
    client.on("error", (e) => errors.push(e));
    await expect(client.presence(ROOM)).rejects.toMatchObject({ code: "closed", room: ROOM });
    const ws = await up(client);
    const refused = client.presence(ROOM);
    ws.receive({
      type: "error",
      id: ws.lastOf("presence").id,
      code: "forbidden",
      message: "not subscribed to dialog:1",
    });
    await expect(refused).rejects.toMatchObject({
      code: "forbidden",
      room: ROOM,
      message: "not subscribed to dialog:1",
    });
    const unkept = client.presenceStats("dialog:x");
    ws.receive({ type: "error", id: ws.lastOf("presence_stats").id, code: "bad_request", message: "no presence" });
    await expect(unkept).rejects.toMatchObject({ code: "bad_request", room: "dialog:x" });
    // Refusals settle the promise; they are not `error` events too.
    expect(errors).toEqual([]);

    const lost = client.presence(ROOM);
    ws.serverClose(1006);
    await expect(lost).rejects.toMatchObject({ code: "closed", room: ROOM });
    const closed = client.presenceStats(ROOM);
    client.close();
    await expect(closed).rejects.toMatchObject({ code: "closed" });
  });
});
