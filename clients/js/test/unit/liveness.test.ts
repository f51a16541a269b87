// Liveness: the client's own pings (browsers cannot see WebSocket pings), a missing pong as a dead
// connection, the connect timeout, and reconnectNow().
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket, makeClient, settle, up } from "../helpers/fake-ws.js";

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.all = [];
});
afterEach(() => vi.useRealTimers());

describe("liveness", () => {
  it("pings every ping_interval_ms and stays connected while pongs come back", async () => {
    const { client } = makeClient({ pongTimeout: 1000 });
    const ws = await up(client, { ping_interval_ms: 5000 });
    ws.autoPong = false;
    // A pong 999 ms after each ping, just inside the 1000 ms pong timeout.
    for (let i = 1; i <= 5; i++) {
      vi.advanceTimersByTime(i === 1 ? 4999 : 4000);
      expect(ws.frames("ping").length).toBe(i - 1);
      vi.advanceTimersByTime(1);
      expect(ws.frames("ping").length).toBe(i);
      vi.advanceTimersByTime(999);
      ws.receive({ type: "pong" });
    }
    expect(client.state.status).toBe("connected");
    expect(FakeWebSocket.all.length).toBe(1);
  });

  it("treats a ping without any answer as a dead connection and reconnects", async () => {
    const { client } = makeClient({ pongTimeout: 3000 });
    const ws = await up(client, { ping_interval_ms: 5000 });
    ws.autoPong = false;
    vi.advanceTimersByTime(5000);
    expect(ws.frames("ping").length).toBe(1);
    vi.advanceTimersByTime(2999);
    expect(client.state.status).toBe("connected");
    vi.advanceTimersByTime(1);
    expect(client.state).toMatchObject({ status: "disconnected", reason: "no-pong" });
    expect(ws.closedWith).toBe(1000);
    vi.advanceTimersByTime(1000);
    await settle();
    expect(FakeWebSocket.all.length).toBe(2);
  });

  it("counts any frame as an answer", async () => {
    const { client } = makeClient({ pongTimeout: 3000 });
    const ws = await up(client, { ping_interval_ms: 5000 });
    ws.autoPong = false;
    vi.advanceTimersByTime(6000);
    ws.receive({ type: "event", room: "user:u1", event: "x", data: null, id: "a", offset: 1, epoch: "e1" });
    vi.advanceTimersByTime(3000);
    expect(client.state.status).toBe("connected");
  });

  it("gives up on a socket that opens but never says connected", async () => {
    const { client } = makeClient({ connectTimeout: 4000 });
    client.connect();
    await settle();
    FakeWebSocket.last().open();
    vi.advanceTimersByTime(3999);
    expect(client.state.status).toBe("connecting");
    vi.advanceTimersByTime(1);
    expect(client.state).toMatchObject({ status: "disconnected", reason: "connect-timeout" });
  });

  it("reconnectNow() cuts a pending backoff short", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999);
    const { client } = makeClient({ backoff: { initial: 60_000, max: 60_000 } });
    const ws = await up(client);
    ws.serverClose(1006);
    expect(client.state).toMatchObject({ status: "disconnected" });
    client.reconnectNow();
    await settle();
    expect(FakeWebSocket.all.length).toBe(2);
    await up(client);
    vi.advanceTimersByTime(120_000);
    await settle();
    // The cancelled retry does not open a third socket.
    expect(FakeWebSocket.all.length).toBe(2);
    vi.restoreAllMocks();
  });

  it("reconnectNow() on an open connection pings at once, and drops it without an answer", async () => {
    const { client } = makeClient({ pongTimeout: 2000 });
    const ws = await up(client, { ping_interval_ms: 25_000 });
    ws.autoPong = false;
    client.reconnectNow();
    expect(ws.frames("ping").length).toBe(1);
    vi.advanceTimersByTime(2000);
    expect(client.state).toMatchObject({ status: "disconnected", reason: "no-pong" });
  });
});
