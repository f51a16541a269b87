// Events delivered once: by message id per room (bounded), by offset for replays, and across a
// reload through the storage adapter (synchronous like localStorage, asynchronous like AsyncStorage).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RoomEvent, StorageLike } from "../../src/index.js";
import { EPOCH, event, FakeWebSocket, makeClient, settle, up } from "../helpers/fake-ws.js";

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.all = [];
});
afterEach(() => vi.useRealTimers());

function collect(client: ReturnType<typeof makeClient>["client"]) {
  const events: RoomEvent[] = [];
  client.on("event", (e) => events.push(e));
  return events;
}

class MemoryStorage implements StorageLike {
  readonly data = new Map<string, string>();
  getItem(key: string) {
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.data.set(key, value);
  }
}

class AsyncMemoryStorage implements StorageLike {
  readonly data = new Map<string, string>();
  async getItem(key: string) {
    await Promise.resolve();
    return this.data.get(key) ?? null;
  }
  async setItem(key: string, value: string) {
    await Promise.resolve();
    this.data.set(key, value);
  }
}

describe("dedup", () => {
  it("drops an event whose id the room already delivered (a backend publishing it twice)", async () => {
    const { client } = makeClient();
    const events = collect(client);
    const ws = await up(client);
    ws.receive(event("user:u1", 1, "m-1"));
    ws.receive(event("user:u1", 2, "m-2"));
    ws.receive(event("user:u1", 3, "m-1"));
    ws.receive(event("user:u1", 4, "m-3"));
    expect(events.map((e) => e.id)).toEqual(["m-1", "m-2", "m-3"]);
    // The duplicate still moves the position: the next since starts after it.
    expect(client.position("user:u1")).toEqual({ offset: 4, epoch: EPOCH });
  });

  it("keeps ids per room: the same id in another room is another message", async () => {
    const { client } = makeClient();
    const events = collect(client);
    const ws = await up(client);
    ws.receive(event("user:u1", 1, "m-1"));
    ws.receive(event("org:o1", 1, "m-1"));
    expect(events.map((e) => e.room)).toEqual(["user:u1", "org:o1"]);
  });

  it("drops replayed offsets (a since-subscribe sends again what the connection had)", async () => {
    const { client } = makeClient();
    const events = collect(client);
    const ws = await up(client);
    for (const n of [1, 2, 3]) ws.receive(event("user:u1", n));
    ws.receive(event("user:u1", 2, "other-id"));
    expect(events.map((e) => e.offset)).toEqual([1, 2, 3]);
  });

  it("remembers at most dedupSize ids per room, forgetting the oldest", async () => {
    const { client } = makeClient({ dedupSize: 3 });
    const events = collect(client);
    const ws = await up(client);
    ["a", "b", "c", "d"].forEach((id, i) => void ws.receive(event("user:u1", i + 1, id)));
    ws.receive(event("user:u1", 5, "b")); // still remembered: dropped
    ws.receive(event("user:u1", 6, "a")); // forgotten: delivered again
    expect(events.map((e) => e.id)).toEqual(["a", "b", "c", "d", "a"]);
  });
});

describe.each([
  ["synchronous (localStorage)", () => new MemoryStorage()],
  ["asynchronous (AsyncStorage)", () => new AsyncMemoryStorage()],
])("storage adapter, %s", (_, makeStorage) => {
  it("keeps positions and ids across a reload: the next client subscribes with since and drops what was shown", async () => {
    const storage = makeStorage();
    const first = makeClient({ storage });
    const ws = await up(first.client);
    void first.client.subscribe("dialog:1");
    const sub = ws.lastOf("subscribe");
    ws.receive({ type: "ok", id: sub.id, room: "dialog:1", offset: 10, epoch: EPOCH });
    ws.receive(event("dialog:1", 11, "m-11"));
    ws.receive(event("dialog:1", 12, "m-12"));
    ws.receive(event("user:u1", 1, "n-1"));
    await settle();
    expect(storage.data.get("roomcast")).toBeDefined();

    // "The page reloads": a new client on the same storage.
    const second = makeClient({ storage });
    const events = collect(second.client);
    void second.client.subscribe("dialog:1");
    const ws2 = await up(second.client);
    expect(ws2.frames("subscribe").map((f) => [f.room, f.since])).toEqual([
      ["dialog:1", { offset: 12, epoch: EPOCH }],
      ["user:u1", { offset: 1, epoch: EPOCH }],
    ]);
    const sub2 = ws2.frames("subscribe")[0];
    ws2.receive({ type: "ok", id: sub2?.id, room: "dialog:1", offset: 13, epoch: EPOCH, recovered: true });
    // m-12 published again by the backend (a retry after the dedup window): dropped by id.
    ws2.receive(event("dialog:1", 13, "m-12"));
    ws2.receive(event("dialog:1", 14, "m-14"));
    expect(events.map((e) => e.id)).toEqual(["m-14"]);
  });

  it("forgets another account's positions", async () => {
    const storage = makeStorage();
    const first = makeClient({ storage });
    const ws = await up(first.client);
    ws.receive(event("user:u1", 1));
    void first.client.subscribe("dialog:1");
    ws.receive({ type: "ok", id: ws.lastOf("subscribe").id, room: "dialog:1", offset: 5, epoch: EPOCH });
    await settle();
    const second = makeClient({ storage });
    void second.client.subscribe("dialog:1");
    const ws2 = await up(second.client, {
      user: "u2",
      rooms: ["user:u2"],
      positions: { "user:u2": { offset: 0, epoch: EPOCH } },
    });
    expect(ws2.frames("subscribe").map((f) => [f.room, f.since])).toEqual([["dialog:1", undefined]]);
  });

  it("forgets an unsubscribed room", async () => {
    const storage = makeStorage();
    const first = makeClient({ storage });
    const ws = await up(first.client);
    void first.client.subscribe("dialog:1");
    ws.receive({ type: "ok", id: ws.lastOf("subscribe").id, room: "dialog:1", offset: 5, epoch: EPOCH });
    await settle();
    first.client.unsubscribe("dialog:1");
    await settle();
    const second = makeClient({ storage });
    void second.client.subscribe("dialog:1");
    const ws2 = await up(second.client);
    expect(ws2.lastOf("subscribe").since).toBeUndefined();
  });
});
