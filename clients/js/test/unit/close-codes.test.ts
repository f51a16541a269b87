// What the client does for each close code (docs/protocol.md, "Close codes").
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RoomcastError } from "../../src/index.js";
import { FakeWebSocket, makeClient, settle, up } from "../helpers/fake-ws.js";

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.all = [];
});
afterEach(() => vi.useRealTimers());

/** Long enough for any backoff (20 s cap) to have fired. */
const LATER = 60_000;

describe("close codes", () => {
  it.each([
    [1001, "server-close"],
    [1006, "network"],
    [1011, "server-close"],
    [1012, "server-close"],
    [4001, "token-expired"],
    [4008, "server-close"],
    [4029, "server-close"],
  ])("%i: reconnects after a backoff, with a token from getToken()", async (code, reason) => {
    const { client, tokens } = makeClient();
    const ws = await up(client);
    ws.serverClose(code);
    expect(client.state).toMatchObject({ status: "disconnected", reason, code });
    expect(client.state).toHaveProperty("retryAt");
    vi.advanceTimersByTime(LATER);
    await settle();
    expect(FakeWebSocket.all.length).toBe(2);
    FakeWebSocket.last().open();
    expect(FakeWebSocket.last().lastOf("auth")).toEqual({ type: "auth", token: "tok-2" });
    expect(tokens).toEqual(["tok-1", "tok-2"]);
  });

  it("reconnects when the socket fails before it opens (network error)", async () => {
    const { client } = makeClient();
    client.connect();
    await settle();
    FakeWebSocket.last().serverClose(1006);
    vi.advanceTimersByTime(LATER);
    await settle();
    expect(FakeWebSocket.all.length).toBe(2);
  });

  it.each([
    [1000, "server-close"],
    [4009, "client-bug"],
    [4400, "client-bug"],
  ])("%i: stops and does not reconnect", async (code, reason) => {
    const { client } = makeClient();
    const errors: RoomcastError[] = [];
    client.on("error", (e) => errors.push(e));
    const ws = await up(client);
    ws.serverClose(code);
    expect(client.state).toEqual({ status: "disconnected", reason, code, attempt: 0 });
    vi.advanceTimersByTime(LATER);
    await settle();
    expect(FakeWebSocket.all.length).toBe(1);
    // 1000 is a normal close: nothing to report. 4009 and 4400 are client bugs: reported.
    expect(errors.map((e) => e.code)).toEqual(code === 1000 ? [] : ["closed"]);
  });

  it("4003: stops when getToken() gives the same token again", async () => {
    const { client } = makeClient({ getToken: () => "same" });
    const errors: RoomcastError[] = [];
    client.on("error", (e) => errors.push(e));
    const ws = await up(client);
    ws.serverClose(4003);
    await settle();
    expect(client.state).toEqual({ status: "disconnected", reason: "forbidden", code: 4003, attempt: 0 });
    vi.advanceTimersByTime(LATER);
    await settle();
    expect(FakeWebSocket.all.length).toBe(1);
    expect(errors.map((e) => e.code)).toEqual(["closed"]);
  });

  it("4003: stops when getToken() fails", async () => {
    let n = 0;
    const { client } = makeClient({
      getToken: () => {
        if (n++ > 0) throw new Error("logged out");
        return "t";
      },
    });
    const ws = await up(client);
    ws.serverClose(4003);
    await settle();
    vi.advanceTimersByTime(LATER);
    await settle();
    expect(FakeWebSocket.all.length).toBe(1);
    expect(client.state).toMatchObject({ status: "disconnected", reason: "forbidden" });
  });

  it("4003: reconnects with the different token getToken() returned, without asking twice", async () => {
    const { client, tokens } = makeClient();
    const ws = await up(client);
    ws.serverClose(4003);
    await settle();
    expect(client.state).toMatchObject({ status: "disconnected", reason: "forbidden", code: 4003 });
    expect(client.state).toHaveProperty("retryAt");
    vi.advanceTimersByTime(LATER);
    await settle();
    FakeWebSocket.last().open();
    expect(FakeWebSocket.last().lastOf("auth")).toEqual({ type: "auth", token: "tok-2" });
    expect(tokens).toEqual(["tok-1", "tok-2"]);
  });

  it("close() closes with 1000 and stops; connect() starts again", async () => {
    const { client } = makeClient();
    const ws = await up(client);
    client.close();
    expect(ws.closedWith).toBe(1000);
    expect(client.state).toEqual({ status: "disconnected", reason: "closed", attempt: 0 });
    vi.advanceTimersByTime(LATER);
    expect(FakeWebSocket.all.length).toBe(1);
    client.connect();
    await settle();
    expect(FakeWebSocket.all.length).toBe(2);
  });
});
