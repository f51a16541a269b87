// Delivery receipts with a fake socket and fake timers: `ack` with the highest offset delivered
// per room, after the batch of frames, at most one per `receiptInterval` and one more when the
// room goes quiet; never an offset that was not delivered, never one of an old epoch; acks not
// answered are sent again after a reconnect; a last one before unsubscribe and close().
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RoomcastClient, RoomcastError } from "../../src/index.js";
import { EPOCH, event, FakeWebSocket, makeClient, settle, up } from "../helpers/fake-ws.js";

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.all = [];
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const ROOM = "dialog:1";

/** A connected client subscribed to ROOM (position 0) with the given options. */
async function joined(options: { receipts?: boolean } = { receipts: true }, interval?: number) {
  const { client } = makeClient(interval === undefined ? {} : { receiptInterval: interval });
  const errors: RoomcastError[] = [];
  client.on("error", (e) => errors.push(e));
  const ws = await up(client);
  void client.subscribe(ROOM, options);
  okLast(ws, ROOM, 0);
  return { client, ws, errors };
}

function okLast(ws: FakeWebSocket, room: string, offset: number, extra: Record<string, unknown> = {}) {
  const sub = ws
    .frames("subscribe")
    .filter((f) => f.room === room)
    .at(-1);
  if (!sub) throw new Error(`no subscribe for ${room}`);
  ws.receive({ type: "ok", id: sub.id, room, offset, epoch: EPOCH, ...extra });
}

/** The acks sent, as offsets, and the time (fake ms) each went out. */
function watchAcks(ws: FakeWebSocket) {
  const t0 = Date.now();
  const acks: { offset: number; at: number; id: number }[] = [];
  const send = ws.send.bind(ws);
  ws.send = (data: string) => {
    send(data);
    const f = JSON.parse(data) as { type: string; offset: number; id: number };
    if (f.type === "ack") acks.push({ offset: f.offset, at: Date.now() - t0, id: f.id });
  };
  return acks;
}

async function reconnect(ws: FakeWebSocket, client: RoomcastClient) {
  vi.spyOn(Math, "random").mockReturnValue(0);
  ws.serverClose(1012);
  await settle();
  return up(client);
}

describe("receipts", () => {
  it("coalesces a batch of frames into one ack with its highest offset", async () => {
    const { ws } = await joined();
    const acks = watchAcks(ws);
    for (let n = 1; n <= 10; n++) ws.receive(event(ROOM, n));
    expect(acks).toEqual([]);
    await vi.advanceTimersByTimeAsync(0);
    expect(acks.map((a) => a.offset)).toEqual([10]);
    expect(ws.lastOf("ack")).toEqual({ type: "ack", room: ROOM, offset: 10, epoch: EPOCH, id: acks[0]?.id });
    await vi.advanceTimersByTimeAsync(5000);
    expect(acks.length).toBe(1);
  });

  it("sends at most one ack per interval while events flow, and the highest once more when quiet", async () => {
    const { ws } = await joined({ receipts: true }, 200);
    const acks = watchAcks(ws);
    // An event every 10 ms for 1 s.
    for (let n = 1; n <= 100; n++) {
      ws.receive(event(ROOM, n));
      await vi.advanceTimersByTimeAsync(10);
    }
    await vi.advanceTimersByTimeAsync(1000);
    const offsets = acks.map((a) => a.offset);
    expect(offsets[0]).toBe(1);
    expect(offsets.at(-1)).toBe(100);
    expect(acks.length).toBeGreaterThanOrEqual(5);
    expect(acks.length).toBeLessThanOrEqual(7);
    for (let i = 1; i < acks.length; i++) {
      const [a, b] = [acks[i - 1], acks[i]] as [(typeof acks)[0], (typeof acks)[0]];
      expect(b.offset).toBeGreaterThan(a.offset);
      expect(b.at - a.at).toBeGreaterThanOrEqual(200);
    }
  });

  it("keeps a throttle per room, honours receiptInterval, and acks only rooms with receipts", async () => {
    const { client, ws } = await joined({ receipts: true }, 1000);
    void client.subscribe("dialog:2", { receipts: true });
    okLast(ws, "dialog:2", 0);
    void client.subscribe("dialog:3");
    okLast(ws, "dialog:3", 0);
    ws.receive(event(ROOM, 1));
    ws.receive(event("dialog:2", 1));
    ws.receive(event("dialog:3", 1));
    await vi.advanceTimersByTimeAsync(0);
    ws.receive(event(ROOM, 2));
    ws.receive(event("dialog:2", 2));
    ws.receive(event("dialog:3", 2));
    await vi.advanceTimersByTimeAsync(999);
    expect(ws.frames("ack").map((f) => [f.room, f.offset])).toEqual([
      [ROOM, 1],
      ["dialog:2", 1],
    ]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ws.frames("ack").map((f) => [f.room, f.offset])).toEqual([
      [ROOM, 1],
      ["dialog:2", 1],
      [ROOM, 2],
      ["dialog:2", 2],
    ]);
  });

  it("is off unless asked for, and can be turned on for an automatic user: room", async () => {
    const { client } = makeClient();
    const ws = await up(client);
    void client.subscribe(ROOM);
    okLast(ws, ROOM, 0);
    ws.receive(event(ROOM, 1));
    ws.receive(event("user:u1", 1));
    await vi.advanceTimersByTimeAsync(1000);
    expect(ws.frames("ack")).toEqual([]);
    await client.subscribe("user:u1", { receipts: true });
    ws.receive(event("user:u1", 2));
    await vi.advanceTimersByTimeAsync(0);
    expect(ws.frames("ack").map((f) => [f.room, f.offset])).toEqual([["user:u1", 2]]);
  });

  it("never acks an offset it did not receive: not the ok's, not a replay's, not a reload's", async () => {
    const { client, ws } = await joined();
    const acks = watchAcks(ws);
    // The room is at 50 when joined: nothing received yet, nothing to ack.
    void client.subscribe("dialog:2", { receipts: true });
    okLast(ws, "dialog:2", 50);
    await vi.advanceTimersByTimeAsync(1000);
    expect(acks).toEqual([]);
    ws.receive(event(ROOM, 3));
    ws.receive(event(ROOM, 2)); // a replay below the position: dropped, not acked
    await vi.advanceTimersByTimeAsync(1000);
    expect(acks.map((a) => a.offset)).toEqual([3]);
    ws.receive({ type: "ok", id: acks[0]?.id });
    // Reconnect: history too short, the room is reloaded at 400. The ack stays at what arrived.
    const ws2 = await reconnect(ws, client);
    okLast(ws2, ROOM, 400, { recovered: false });
    await vi.advanceTimersByTimeAsync(1000);
    expect(ws2.frames("ack")).toEqual([]);
    ws2.receive(event(ROOM, 401));
    await vi.advanceTimersByTimeAsync(0);
    expect(ws2.frames("ack").map((f) => f.offset)).toEqual([401]);
  });

  it("drops an unsent ack of the old epoch when the room comes back in a new one", async () => {
    const { client, ws } = await joined({ receipts: true }, 200);
    ws.receive(event(ROOM, 5));
    await vi.advanceTimersByTimeAsync(0);
    ws.receive({ type: "ok", id: ws.lastOf("ack").id });
    ws.receive(event(ROOM, 7)); // throttled: due at 200 ms
    const ws2 = await reconnect(ws, client);
    expect(ws.frames("ack").map((f) => f.offset)).toEqual([5]);
    // The gateway restarted: a new epoch whose offset 7 is another event.
    okLast(ws2, ROOM, 9, { epoch: "e2", recovered: false });
    await vi.advanceTimersByTimeAsync(1000);
    expect(ws2.frames("ack")).toEqual([]);
    ws2.receive(event(ROOM, 10, "m10", "e2"));
    await vi.advanceTimersByTimeAsync(0);
    expect(ws2.frames("ack").map((f) => f.offset)).toEqual([10]);
  });

  it("an ack of the old epoch is no floor for the new one", async () => {
    const { ws } = await joined();
    ws.receive(event(ROOM, 40));
    await vi.advanceTimersByTimeAsync(0);
    ws.receive({ type: "ok", id: ws.lastOf("ack").id });
    // Same subscription, a new epoch (Redis lost the room): offsets start again.
    ws.receive(event(ROOM, 1, "n1", "e2"));
    await vi.advanceTimersByTimeAsync(1000);
    expect(ws.frames("ack").map((f) => f.offset)).toEqual([40, 1]);
  });

  it("sends an unanswered or throttled ack again after a reconnect in the same epoch, not an answered one", async () => {
    const { client, ws } = await joined({ receipts: true }, 200);
    ws.receive(event(ROOM, 1));
    await vi.advanceTimersByTimeAsync(0);
    ws.receive({ type: "ok", id: ws.lastOf("ack").id });
    ws.receive(event(ROOM, 2));
    await vi.advanceTimersByTimeAsync(200); // ack 2 sent, never answered
    expect(ws.frames("ack").map((f) => f.offset)).toEqual([1, 2]);
    const ws2 = await reconnect(ws, client);
    expect(ws2.lastOf("subscribe").since).toEqual({ offset: 2, epoch: EPOCH });
    okLast(ws2, ROOM, 2, { recovered: true });
    await vi.advanceTimersByTimeAsync(0);
    expect(ws2.frames("ack").map((f) => f.offset)).toEqual([2]);
    ws2.receive(event(ROOM, 3)); // throttled when the connection drops
    const ws3 = await reconnect(ws2, client);
    okLast(ws3, ROOM, 3, { recovered: true });
    await vi.advanceTimersByTimeAsync(0);
    expect(ws3.frames("ack").map((f) => f.offset)).toEqual([3]);
    ws3.receive({ type: "ok", id: ws3.lastOf("ack").id });
    // Answered: a later reconnect with nothing new sends no ack.
    const ws4 = await reconnect(ws3, client);
    okLast(ws4, ROOM, 3, { recovered: true });
    await vi.advanceTimersByTimeAsync(1000);
    expect(ws4.frames("ack")).toEqual([]);
  });

  it("sends nothing while disconnected or while the resubscribe is in flight", async () => {
    const { client, ws } = await joined({ receipts: true }, 200);
    vi.spyOn(Math, "random").mockReturnValue(0);
    ws.receive(event(ROOM, 1));
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(0);
    expect(ws.frames("ack")).toEqual([]);
    const ws2 = await up(client);
    expect(ws2).not.toBe(ws);
    await vi.advanceTimersByTimeAsync(1000);
    expect(ws2.frames("ack")).toEqual([]);
    okLast(ws2, ROOM, 1, { recovered: true });
    await vi.advanceTimersByTimeAsync(0);
    const order = ws2.sent.map((f) => f.type).filter((t) => t === "subscribe" || t === "ack");
    expect(order.slice(-2)).toEqual(["subscribe", "ack"]);
  });

  it("flushes the throttled ack before close() and before unsubscribe()", async () => {
    const { client, ws } = await joined({ receipts: true }, 200);
    void client.subscribe("dialog:2", { receipts: true });
    okLast(ws, "dialog:2", 0);
    ws.receive(event(ROOM, 1));
    ws.receive(event("dialog:2", 1));
    await vi.advanceTimersByTimeAsync(0);
    ws.receive(event(ROOM, 2));
    ws.receive(event("dialog:2", 2));
    client.unsubscribe("dialog:2");
    const tail = ws.sent.slice(-2).map((f) => [f.type, f.room, f.offset]);
    expect(tail).toEqual([
      ["ack", "dialog:2", 2],
      ["unsubscribe", "dialog:2", undefined],
    ]);
    client.close();
    expect(ws.lastOf("ack")).toMatchObject({ room: ROOM, offset: 2 });
    expect(ws.closedWith).toBe(1000);
    await vi.advanceTimersByTimeAsync(5000);
    expect(ws.frames("ack").length).toBe(4);
  });

  it("reports a refused ack once per connection and goes on acking", async () => {
    const { ws, errors } = await joined({ receipts: true }, 200);
    for (let n = 1; n <= 3; n++) {
      ws.receive(event(ROOM, n));
      await vi.advanceTimersByTimeAsync(200);
      ws.receive({
        type: "error",
        id: ws.lastOf("ack").id,
        code: "bad_request",
        message: "receipts are not taken for dialog:1 (see receipt_rooms)",
      });
    }
    expect(ws.frames("ack").map((f) => f.offset)).toEqual([1, 2, 3]);
    expect(errors.map((e) => [e.code, e.room])).toEqual([["bad_request", ROOM]]);
  });
});
