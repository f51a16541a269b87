// Tokens: getToken() before every connect, the token in the first frame (never the URL), and
// `refresh` on the open connection before `expires_at`.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket, makeClient, settle, up } from "../helpers/fake-ws.js";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-01-01T00:00:00Z"));
  FakeWebSocket.all = [];
});
afterEach(() => vi.useRealTimers());

const nowS = () => Math.floor(Date.now() / 1000);

describe("token", () => {
  it("is asked for before the connect and sent in an auth frame, not in the URL", async () => {
    const { client, tokens } = makeClient();
    client.connect();
    await settle();
    const ws = FakeWebSocket.last();
    expect(tokens).toEqual(["tok-1"]);
    expect(ws.url).toBe("ws://gw/ws");
    ws.open();
    expect(ws.sent).toEqual([{ type: "auth", token: "tok-1" }]);
  });

  it("is refreshed refreshMargin before expires_at, then again before the new expiry", async () => {
    const { client, tokens } = makeClient();
    const ws = await up(client, { expires_at: nowS() + 3600 });
    vi.advanceTimersByTime(3540_000 - 1);
    await settle();
    expect(ws.frames("refresh")).toEqual([]);
    vi.advanceTimersByTime(1);
    await settle();
    expect(ws.lastOf("refresh")).toMatchObject({ type: "refresh", token: "tok-2" });
    ws.receive({ type: "ok", id: ws.lastOf("refresh").id, expires_at: nowS() + 3600 });
    vi.advanceTimersByTime(3540_000 - 1);
    await settle();
    expect(ws.frames("refresh").length).toBe(1);
    vi.advanceTimersByTime(1);
    await settle();
    expect(ws.frames("refresh").length).toBe(2);
    expect(tokens).toEqual(["tok-1", "tok-2", "tok-3"]);
    expect(FakeWebSocket.all.length).toBe(1);
    expect(client.state.status).toBe("connected");
  });

  it("uses at most a quarter of a short token's lifetime as the margin", async () => {
    const { client } = makeClient();
    const ws = await up(client, { expires_at: nowS() + 4 });
    vi.advanceTimersByTime(2999);
    await settle();
    expect(ws.frames("refresh")).toEqual([]);
    vi.advanceTimersByTime(1);
    await settle();
    expect(ws.frames("refresh").length).toBe(1);
  });

  it("reconnects with a fresh token when the refresh is refused", async () => {
    const { client, tokens } = makeClient();
    const ws = await up(client, { expires_at: nowS() + 100 });
    vi.advanceTimersByTime(75_000);
    await settle();
    ws.receive({ type: "error", id: ws.lastOf("refresh").id, code: "unauthorized", message: "token expired" });
    expect(ws.closedWith).toBe(1000);
    expect(client.state).toMatchObject({ status: "disconnected", reason: "refresh-failed" });
    vi.advanceTimersByTime(20_000);
    await settle();
    FakeWebSocket.last().open();
    expect(FakeWebSocket.all.length).toBe(2);
    expect(FakeWebSocket.last().lastOf("auth").token).toBe("tok-3");
    expect(tokens.length).toBe(3);
  });

  it("asks again 2 s later when getToken() fails before a refresh, keeping the connection", async () => {
    let fail = false;
    let n = 0;
    const { client } = makeClient({
      getToken: () => {
        if (fail) {
          fail = false;
          throw new Error("auth server down");
        }
        return `t${++n}`;
      },
    });
    const ws = await up(client, { expires_at: nowS() + 100 });
    fail = true;
    vi.advanceTimersByTime(75_000);
    await settle();
    expect(ws.frames("refresh")).toEqual([]);
    vi.advanceTimersByTime(2000);
    await settle();
    expect(ws.lastOf("refresh").token).toBe("t2");
    expect(client.state.status).toBe("connected");
  });

  it("calls getToken() before every connect, also when it failed the time before", async () => {
    let calls = 0;
    const { client } = makeClient({
      getToken: async () => {
        calls++;
        if (calls === 1) throw new Error("offline");
        return `t${calls}`;
      },
    });
    client.connect();
    await settle();
    expect(FakeWebSocket.all.length).toBe(0);
    expect(client.state).toMatchObject({ status: "disconnected", reason: "token-unavailable" });
    vi.advanceTimersByTime(1000);
    await settle();
    FakeWebSocket.last().open();
    expect(FakeWebSocket.last().lastOf("auth").token).toBe("t2");
  });
});
