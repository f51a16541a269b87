// The three transport setups of socket.io-client against one real node: default (a polling
// handshake, then the upgrade to WebSocket), WebSocket only, polling only; the three ways to give
// the token; many default connects in a row (each must answer after its upgrade); and the
// Engine.IO heartbeat (ping_interval, pingTimeout = idle_timeout - ping_interval).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Gateway, startGateway, until } from "../helpers/procs.js";
import { Api, ask, client, closeAll, connected, type Options, type Rec, seq, upgraded } from "../helpers/sio.js";

let gw: Gateway;
let fast: Gateway;
let api: Api;
const recs: Rec[] = [];

beforeAll(async () => {
  [gw, fast] = await Promise.all([
    startGateway({ ROOMCAST_NODE_ID: "t1" }),
    startGateway({ ROOMCAST_NODE_ID: "t2", ROOMCAST_PING_INTERVAL: "300ms", ROOMCAST_IDLE_TIMEOUT: "900ms" }),
  ]);
  api = new Api(gw.http);
});

afterAll(async () => {
  closeAll(recs);
  await Promise.all([gw?.stop(), fast?.stop()]);
});

function open(user: string, options: Options = {}, url = gw.http): { rec: Rec; transports: string[] } {
  const rec = client(url, user, options);
  recs.push(rec);
  // The engine's transports in order: the first, then each upgrade.
  const transports: string[] = [];
  rec.socket.io.on("open", () => {
    const engine = rec.socket.io.engine;
    transports.push(engine.transport.name);
    engine.on("upgrade", (t: { name: string }) => transports.push(t.name));
  });
  return { rec, transports };
}

/** Publishes 20 numbered events to the user's room and checks each arrives once, in order, with a string last argument. */
async function deliversTwenty(rec: Rec, event = "user:notification"): Promise<void> {
  for (const n of seq(20)) await api.publish({ room: `user:${rec.user}`, event, data: { n } });
  await until(`${rec.user}'s 20 events`, () => rec.numbers(event).length >= 20);
  expect(rec.numbers(event)).toEqual(seq(20));
  const lasts = rec.got.filter((g) => g.event === event).map((g) => g.args.at(-1));
  expect(lasts.every((l) => typeof l === "string" && l.length > 0)).toBe(true);
  expect(rec.got.filter((g) => g.event === event).every((g) => g.args.length === 2)).toBe(true);
}

describe("transports", () => {
  it("default: a polling handshake, then the upgrade to WebSocket; events and acks before and after it", async () => {
    const { rec, transports } = open("d1");
    await connected(rec);
    await upgraded(rec);
    expect(transports).toEqual(["polling", "websocket"]);
    await deliversTwenty(rec);
    const reply = await ask(rec, "roomcast:unsubscribe", { room: "dialog:none" });
    expect(reply).toMatchObject({ type: "error", code: "not_found" });
    expect(rec.connects).toHaveLength(1);
    expect(rec.disconnects).toEqual([]);
  });

  it('WebSocket only (transports: ["websocket"]): never polls', async () => {
    const { rec, transports } = open("w1", { transports: ["websocket"] });
    await connected(rec);
    expect(rec.connects[0]?.transport).toBe("websocket");
    await deliversTwenty(rec);
    expect(await ask(rec, "roomcast:unsubscribe", { room: "user:w1" })).toMatchObject({
      type: "error",
      code: "forbidden",
    });
    expect(transports).toEqual(["websocket"]);
  });

  it('polling only (transports: ["polling"]): stays on long-polling; events and acks', async () => {
    const { rec, transports } = open("p1", { transports: ["polling"] });
    await connected(rec);
    await deliversTwenty(rec);
    expect(await ask(rec, "roomcast:unsubscribe", { room: "org:o1" })).toMatchObject({
      type: "error",
      code: "forbidden",
    });
    expect(transports).toEqual(["polling"]);
    expect(rec.socket.io.engine.transport.name).toBe("polling");
  });

  it("the token in ?token= or in Authorization: Bearer (extraHeaders) works like auth.token", async () => {
    const viaQuery = open("q1", { give: "query" }).rec;
    const viaHeader = open("h1", { give: "header" }).rec;
    const viaHeaderWs = open("h2", { give: "header", transports: ["websocket"] }).rec;
    const none = open("n1", { give: "none", reconnection: false }).rec;
    await Promise.all([connected(viaQuery), connected(viaHeader), connected(viaHeaderWs)]);
    for (const rec of [viaQuery, viaHeader, viaHeaderWs]) {
      await api.publish({ room: `user:${rec.user}`, event: "hello", data: { n: 1 } });
      await until(`${rec.user}'s event`, () => rec.numbers("hello").length === 1);
    }
    await until("the tokenless socket's connect_error", () => none.connectErrors.length === 1);
    expect(none.connectErrors[0]?.code).toBe("unauthorized");
    expect(none.connects).toEqual([]);
  });

  it("30 default-transport connects in a row: events published during the upgrade arrive once, in order; acks after it", async () => {
    // The CONNECT reply can reach the client before or after the upgrade (the GET open during the
    // probe may end with a noop), and events published from the connect event on race the probe:
    // either way the session must go on, lose nothing and answer.
    const outcomes: string[] = [];
    for (const i of seq(30)) {
      const { rec } = open(`r${i}`);
      await new Promise((ok) => rec.socket.once("connect", () => ok(undefined)));
      const before = rec.connects[0]?.transport ?? "";
      for (const n of seq(5)) await api.publish({ room: `user:r${i}`, event: "n", data: { n } });
      await upgraded(rec);
      const reply = await ask(rec, "roomcast:unsubscribe", { room: "dialog:x" }).catch((e: Error) => e);
      await until(`r${i}'s 5 events`, () => rec.numbers("n").length >= 5, 5_000).catch(() => {});
      const events = rec.numbers("n").join(",");
      outcomes.push(
        `${reply instanceof Error ? `#${i} (connected on ${before}): ${reply.message}` : String(reply.code)} ${events}` +
          (rec.disconnects.length ? ` ${rec.disconnects.map((d) => d.reason)}` : ""),
      );
      rec.socket.close();
    }
    expect(outcomes).toEqual(seq(30).map(() => "not_found 1,2,3,4,5"));
  });
});

describe("heartbeat", () => {
  const handshake = async (url: string) => {
    const text = await (await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).text();
    expect(text.startsWith("0")).toBe(true);
    return JSON.parse(text.slice(1)) as { pingInterval: number; pingTimeout: number; upgrades: string[] };
  };

  it("the handshake carries ping_interval and idle_timeout - ping_interval (defaults 25 s and 35 s)", async () => {
    expect(await handshake(gw.http)).toMatchObject({
      pingInterval: 25_000,
      pingTimeout: 35_000,
      upgrades: ["websocket"],
    });
    expect(await handshake(fast.http)).toMatchObject({ pingInterval: 300, pingTimeout: 600 });
  });

  it("a client that answers the pings stays connected across many intervals (300 ms pings)", async () => {
    for (const transports of [["websocket"], ["polling"]]) {
      const { rec } = open(`hb-${transports[0]}`, { transports }, fast.http);
      let pings = 0;
      rec.socket.io.on("ping", () => pings++);
      await connected(rec);
      await until("10 pings", () => pings >= 10, 10_000);
      // Still the same session: an ack and an event on it.
      expect(await ask(rec, "roomcast:unsubscribe", { room: "dialog:x" })).toMatchObject({ code: "not_found" });
      expect(rec.connects).toHaveLength(1);
      expect(rec.disconnects).toEqual([]);
      rec.socket.close();
    }
  });
});
