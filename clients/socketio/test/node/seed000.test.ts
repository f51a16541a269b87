// The seed 000 flow: short-lived tokens. With `auth` as a function socket.io-client asks for a
// fresh token at every CONNECT: when the 3-second token expires the gateway closes the transport
// (not a Socket.IO DISCONNECT), the client reconnects by itself with a new token, the session is
// recovered and nothing published meanwhile is missed. With a static `auth: {token}` (the seed 000
// bug) the reconnect is refused with token_expired and the client stops until the app's
// connect_error handler gives it a token and calls connect(). roomcast:refresh keeps a session
// past its token's exp.
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Gateway, startGateway, until } from "../helpers/procs.js";
import { Api, ask, client, closeAll, connected, type Rec, seq, signToken } from "../helpers/sio.js";

let gw: Gateway;
let api: Api;
const recs: Rec[] = [];

beforeAll(async () => {
  gw = await startGateway({ ROOMCAST_NODE_ID: "e1", ROOMCAST_JWT_LEEWAY: "0s" });
  api = new Api(gw.http);
});

afterAll(async () => {
  closeAll(recs);
  await gw?.stop();
});

const expOf = (token: string | undefined) =>
  (JSON.parse(Buffer.from(token?.split(".")[1] ?? "", "base64url").toString()) as { exp: number }).exp;

/**
 * Publishes numbered events to each room, one round every `pace` ms, until `done()` has held for
 * five rounds (at most `max` rounds); returns the number of rounds.
 */
async function stream(rooms: string[], pace: number, done: () => boolean, max: number): Promise<number> {
  let after = 0;
  for (let n = 1; n <= max; n++) {
    for (const room of rooms) await api.publish({ room, event: "message:new", data: { room, n } });
    if (done() && ++after >= 5) return n;
    await new Promise((r) => setTimeout(r, pace));
  }
  throw new Error(`not done after ${max} rounds`);
}

it("auth as a function: each expiry closes the transport, the client reconnects with a fresh token, recovered, nothing missed", async () => {
  const started = Date.now();
  await api.members("dialog:9", ["u0"]);
  const u0 = client(gw.http, "u0", { ttl: 3 });
  recs.push(u0);
  await connected(u0);
  expect(await ask(u0, "subscribe:chat", { chatId: 9 })).toMatchObject({ type: "ok", room: "dialog:9" });
  const rooms = ["dialog:9", "user:u0"];
  // Rounds 100 ms apart, until two 3-second tokens have expired and the client is back.
  const COUNT = await stream(rooms, 100, () => u0.disconnects.length >= 2 && u0.socket.connected, 150);
  await until("every event", () => rooms.every((room) => u0.numbers("message:new", room).length >= COUNT));
  for (const room of rooms) expect(u0.numbers("message:new", room), room).toEqual(seq(COUNT));
  expect(u0.disconnects.length).toBeGreaterThanOrEqual(2);
  // The transport was closed (socket.io-client comes back by itself), never a DISCONNECT.
  expect(new Set(u0.disconnects.map((d) => d.reason))).toEqual(new Set(["transport close"]));
  expect(u0.connects).toHaveLength(u0.disconnects.length + 1);
  expect(u0.connects.slice(1).map((c) => c.recovered)).toEqual(u0.disconnects.map(() => true));
  expect(u0.connectErrors).toEqual([]);
  // One fresh token per CONNECT; each session ended at its token's exp (leeway 0), within 1.5 s.
  expect(new Set(u0.tokens).size).toBe(u0.connects.length);
  u0.disconnects.forEach((d, i) => {
    const exp = expOf(u0.tokens[i]) * 1000;
    expect(d.at, `disconnect ${i}`).toBeGreaterThanOrEqual(exp);
    expect(d.at, `disconnect ${i}`).toBeLessThan(exp + 1500);
  });
  console.log(
    `seed 000: ${COUNT * rooms.length} events, ${u0.disconnects.length} expiries (${u0.disconnects
      .map((d, i) => `+${d.at - expOf(u0.tokens[i]) * 1000} ms after exp`)
      .join(
        ", ",
      )}), ${u0.tokens.length} tokens, all recovered, each event once and in order; ${Date.now() - started} ms`,
  );
});

it("a static auth {token}: after expiry the CONNECT is refused (token_expired) and the client stops; the documented handler brings it back, recovered", async () => {
  await api.members("dialog:10", ["u1"]);
  const u1 = client(gw.http, "u1", { ttl: 2, give: "static" });
  recs.push(u1);
  const socket = u1.socket;
  let activeAtError: boolean | undefined;
  // The handler docs/socketio.md shows: a refused token is not retried by socket.io-client.
  socket.on("connect_error", (err: Error & { data?: { code?: string } }) => {
    if (err.data?.code !== "token_expired" && err.data?.code !== "unauthorized") return;
    activeAtError = socket.active;
    socket.auth = { token: signToken({ sub: "u1", org: "o1", ttl: 3600 }) };
    // Publish into the gap before coming back: these must be replayed.
    void (async () => {
      for (const n of seq(5, 6)) await api.publish({ room: "dialog:10", event: "message:new", data: { n } });
      socket.connect();
    })();
  });
  await connected(u1);
  expect(await ask(u1, "subscribe:chat", { chatId: 10 })).toMatchObject({ type: "ok" });
  for (const n of seq(5)) await api.publish({ room: "dialog:10", event: "message:new", data: { n } });
  await until("the expiry and the refused reconnect", () => u1.connectErrors.length === 1, 15_000);
  expect(u1.connectErrors[0]).toMatchObject({ code: "token_expired" });
  expect(activeAtError).toBe(false);
  expect(u1.disconnects.map((d) => d.reason)).toEqual(["transport close"]);
  await connected(u1, 2);
  expect(u1.connects[1]?.recovered).toBe(true);
  for (const n of seq(5, 11)) await api.publish({ room: "dialog:10", event: "message:new", data: { n } });
  await until("all 15", () => u1.numbers("message:new").length >= 15);
  expect(u1.numbers("message:new")).toEqual(seq(15));
});

it("roomcast:refresh {token} before exp: the same session goes on past the old token's exp", async () => {
  const u2 = client(gw.http, "u2", { ttl: 2, give: "static" });
  recs.push(u2);
  await connected(u2);
  const oldExp = expOf(u2.tokens[0]) * 1000;
  const fresh = signToken({ sub: "u2", org: "o1", ttl: 600 });
  const reply = await ask(u2, "roomcast:refresh", { token: fresh });
  expect(reply).toMatchObject({ type: "ok", expires_at: expOf(fresh) });
  expect(await ask(u2, "roomcast:refresh", { token: "not-a-token" })).toMatchObject({
    type: "error",
    code: "unauthorized",
  });
  await until("1.5 s past the old exp", () => Date.now() > oldExp + 1500, 10_000);
  await api.publish({ room: "user:u2", event: "user:notification", data: { n: 1 } });
  await until("the event on the same session", () => u2.numbers("user:notification").length === 1);
  expect(u2.connects).toHaveLength(1);
  expect(u2.disconnects).toEqual([]);

  // A valid token of another user: forbidden, then a DISCONNECT (no automatic reconnect).
  expect(await ask(u2, "roomcast:refresh", { token: signToken({ sub: "mallory", org: "o1" }) })).toMatchObject({
    type: "error",
    code: "forbidden",
  });
  await until("u2 disconnected", () => u2.disconnects.length === 1);
  expect(u2.disconnects[0]?.reason).toBe("io server disconnect");
  expect(u2.socket.active).toBe(false);
});
