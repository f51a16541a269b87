// emit (at most once), the typing helper's throttle and idle stop, ephemeral events, and a logger
// that never sees a token.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { EphemeralEvent, LogLevel } from "../../src/index.js";
import { FakeWebSocket, makeClient, settle, up } from "../helpers/fake-ws.js";

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.all = [];
});
afterEach(() => vi.useRealTimers());

describe("emit and typing", () => {
  it("emit sends on an open connection and returns false (queues nothing) otherwise", async () => {
    const { client } = makeClient();
    expect(client.emit("dialog:1", "typing:start")).toBe(false);
    const ws = await up(client);
    expect(client.emit("dialog:1", "typing:start", { x: 1 })).toBe(true);
    expect(ws.frames("emit")).toEqual([{ type: "emit", room: "dialog:1", event: "typing:start", data: { x: 1 } }]);
    ws.serverClose(1006);
    expect(client.emit("dialog:1", "typing:stop")).toBe(false);
    expect(ws.frames("emit").length).toBe(1);
  });

  it("typing() sends start at most once per typingTimeout and stop after typingTimeout of quiet", async () => {
    const { client } = makeClient({ typingTimeout: 3000 });
    const ws = await up(client);
    const t0 = Date.now();
    const log: string[] = [];
    ws.send = ((orig) => (data: string) => {
      orig(data);
      const f = JSON.parse(data) as { type: string; event?: string };
      if (f.type === "emit") log.push(`${Date.now() - t0}:${f.event}`);
    })(ws.send.bind(ws));
    // A keystroke every 200 ms for 7 s, then nothing.
    for (let t = 0; t < 7000; t += 200) {
      client.typing("dialog:1");
      vi.advanceTimersByTime(200);
    }
    vi.advanceTimersByTime(10_000);
    expect(log).toEqual(["0:typing:start", "3000:typing:start", "6000:typing:start", "9800:typing:stop"]);
  });

  it("stopTyping() sends stop at once, and only after a start", async () => {
    const { client } = makeClient();
    const ws = await up(client);
    client.stopTyping("dialog:1");
    expect(ws.frames("emit")).toEqual([]);
    client.typing("dialog:1");
    client.stopTyping("dialog:1");
    expect(ws.frames("emit").map((f) => f.event)).toEqual(["typing:start", "typing:stop"]);
    vi.advanceTimersByTime(10_000);
    expect(ws.frames("emit").length).toBe(2);
  });

  it("delivers other members' emitted events as ephemeral, not as events", async () => {
    const { client } = makeClient();
    const eph: EphemeralEvent[] = [];
    let events = 0;
    client.on("ephemeral", (e) => eph.push(e));
    client.on("event", () => events++);
    const ws = await up(client);
    void client.subscribe("dialog:1");
    ws.receive({ type: "ok", id: ws.lastOf("subscribe").id, room: "dialog:1", offset: 0, epoch: "e1" });
    ws.receive({ type: "event", room: "dialog:1", event: "typing:start", data: {}, from: "u2" });
    expect(eph).toEqual([{ room: "dialog:1", event: "typing:start", data: {}, from: "u2" }]);
    expect(events).toBe(0);
  });

  it("reports an error frame without an id (an emit refused)", async () => {
    const { client } = makeClient();
    const codes: string[] = [];
    client.on("error", (e) => codes.push(e.code));
    const ws = await up(client);
    ws.receive({ type: "error", code: "rate_limited", message: "emit rate" });
    expect(codes).toEqual(["rate_limited"]);
  });
});

describe("logger", () => {
  it("never receives a token, through connect, refresh, subscription tokens, refusals and reconnects", async () => {
    const lines: string[] = [];
    const levels = new Set<LogLevel>();
    let n = 0;
    const secret = () => `eyJSECRET.${++n}.SIG`;
    const { client } = makeClient({
      getToken: secret,
      log: (level, message, fields) => {
        levels.add(level);
        lines.push(`${message} ${JSON.stringify(fields ?? {})}`);
      },
    });
    const ws = await up(client, { expires_at: Math.floor(Date.now() / 1000) + 8 });
    void client.subscribe("dialog:1", { token: secret });
    await settle();
    ws.receive({ type: "error", id: ws.lastOf("subscribe").id, code: "unauthorized", message: "bad token" });
    vi.advanceTimersByTime(7000);
    await settle();
    ws.receive({ type: "error", id: ws.lastOf("refresh").id, code: "unauthorized", message: "token expired" });
    vi.advanceTimersByTime(30_000);
    await settle();
    FakeWebSocket.last().open();
    FakeWebSocket.last().serverClose(4003);
    await settle();
    vi.advanceTimersByTime(30_000);
    await settle();
    FakeWebSocket.last().open();
    FakeWebSocket.last().serverClose(4001, "expired");
    expect(n).toBeGreaterThanOrEqual(6);
    expect(lines.length).toBeGreaterThan(8);
    expect(levels).toEqual(new Set(["info", "warn", "debug"]));
    for (const line of lines) expect(line).not.toMatch(/eyJSECRET|SIG/);
  });
});
