// Reconnect backoff: the sequence of caps, full-jitter bounds, no attempt limit, and the reset
// after a connection that stayed up.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { backoffDelay } from "../../src/index.js";
import { FakeWebSocket, makeClient, settle, up } from "../helpers/fake-ws.js";

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.all = [];
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("backoffDelay", () => {
  it("doubles its cap from 0.5 s up to 20 s by default", () => {
    const top = (attempt: number) => backoffDelay(attempt, {}, () => 0.999999);
    expect([0, 1, 2, 3, 4, 5, 6, 7, 50].map(top)).toEqual([499, 999, 1999, 3999, 7999, 15999, 19999, 19999, 19999]);
    expect(backoffDelay(3, {}, () => 0)).toBe(0);
    expect(backoffDelay(2, { initial: 100, max: 300 }, () => 0.999999)).toBe(299);
  });

  it("spreads delays over the whole range [0, cap) (full jitter)", () => {
    for (const [attempt, cap] of [
      [0, 500],
      [3, 4000],
      [9, 20000],
    ] as const) {
      const samples = Array.from({ length: 5000 }, () => backoffDelay(attempt));
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...samples)).toBeLessThan(cap);
      // Full jitter, not "cap/2 + jitter": both ends of the range are reached.
      expect(Math.min(...samples)).toBeLessThan(cap * 0.02);
      expect(Math.max(...samples)).toBeGreaterThan(cap * 0.98);
    }
  });
});

describe("reconnecting", () => {
  it("waits the backoff before each attempt and never gives up", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const { client } = makeClient();
    client.connect();
    const waits: number[] = [];
    for (let i = 0; i < 40; i++) {
      await settle();
      const ws = FakeWebSocket.last();
      ws.serverClose(1006);
      const s = client.state;
      if (s.status !== "disconnected" || s.retryAt === undefined) throw new Error(JSON.stringify(s));
      const wait = s.retryAt - Date.now();
      waits.push(wait);
      // Not a moment early: no new socket 1 ms before the retry time.
      vi.advanceTimersByTime(wait - 1);
      expect(FakeWebSocket.all.length).toBe(i + 1);
      vi.advanceTimersByTime(1);
    }
    await settle();
    expect(waits.slice(0, 8)).toEqual([250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
    expect(new Set(waits.slice(6))).toEqual(new Set([10000]));
    expect(FakeWebSocket.all.length).toBe(41);
    expect(client.state.status).toBe("connecting");
  });

  it("starts the backoff again after a connection that stayed up, not after a short one", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999999);
    const { client } = makeClient();
    const capAfterClose = async (upFor: number) => {
      const ws = await up(client);
      vi.advanceTimersByTime(upFor);
      ws.serverClose(1012);
      const s = client.state;
      if (s.status !== "disconnected" || s.retryAt === undefined) throw new Error(JSON.stringify(s));
      const wait = s.retryAt - Date.now();
      vi.advanceTimersByTime(wait);
      return wait;
    };
    expect(await capAfterClose(100)).toBe(499);
    expect(await capAfterClose(100)).toBe(999);
    expect(await capAfterClose(100)).toBe(1999);
    expect(await capAfterClose(10_000)).toBe(499);
  });
});
