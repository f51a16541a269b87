// How a session ends, as socket.io-client sees it: /api/disconnect with 4003 or 1000 is a Socket.IO
// DISCONNECT ("io server disconnect": the client does not come back), any other code closes the
// transport (the client comes back by itself and recovers). And the limits of /ws on this face:
// max_connections (connect_error too_many_connections), the emit rate (ack rate_limited) and the
// rooms per connection (ack too_large).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Gateway, startGateway, until } from "../helpers/procs.js";
import { Api, ask, client, closeAll, connected, openConnections, type Rec, seq } from "../helpers/sio.js";

let gw: Gateway;
let limited: Gateway;
let api: Api;
const recs: Rec[] = [];

beforeAll(async () => {
  [gw, limited] = await Promise.all([
    startGateway({ ROOMCAST_NODE_ID: "l1" }),
    startGateway({
      ROOMCAST_NODE_ID: "l2",
      ROOMCAST_MAX_CONNECTIONS: "2",
      ROOMCAST_EMIT_RATE: "1",
      ROOMCAST_EMIT_BURST: "3",
      ROOMCAST_MAX_ROOMS_PER_CONNECTION: "3",
    }),
  ]);
  api = new Api(gw.http);
});

afterAll(async () => {
  closeAll(recs);
  await Promise.all([gw?.stop(), limited?.stop()]);
});

function open(user: string, url = gw.http, transports?: string[]): Rec {
  const rec = client(url, user, {
    reconnectionDelay: 100,
    reconnectionDelayMax: 300,
    ...(transports ? { transports } : {}),
  });
  recs.push(rec);
  return rec;
}

describe("/api/disconnect", () => {
  for (const code of [4003, 1000]) {
    it(`code ${code}: a Socket.IO DISCONNECT, "io server disconnect", no automatic reconnect`, async () => {
      for (const transports of [["websocket"], ["polling"]]) {
        const user = `gone-${code}-${transports[0]}`;
        const rec = open(user, gw.http, transports);
        await connected(rec);
        expect(await api.disconnect(user, code)).toEqual({ closed: 1 });
        // socket.io-client's own state: it will not reconnect.
        await until(`${user}'s socket given up`, () => !rec.socket.active);
        // One DISCONNECT, told to the app once: the DISCONNECT packet must not share a polling
        // response with Engine.IO's close (the client would first report "transport close").
        expect(
          rec.disconnects.map((d) => d.reason),
          transports[0],
        ).toEqual(["io server disconnect"]);
        expect(rec.connects).toHaveLength(1);
      }
    });
  }

  it("the default code (4003), right after connect while the upgrade runs: 20 sessions, each a DISCONNECT, none back", async () => {
    // Default transports: the CONNECT reply came on polling and the WebSocket probe is under way
    // when the backend disconnects the user (a logout, a ban). A poll answered "Session ID
    // unknown" instead of the DISCONNECT makes socket.io-client reconnect, and come back.
    const outcomes: string[] = [];
    for (const i of seq(20)) {
      const user = `gone-default-${i}`;
      const rec = open(user);
      // At the connect event itself (not polled for): the upgrade is still under way.
      await new Promise((ok) => rec.socket.once("connect", () => ok(undefined)));
      await api.disconnect(user);
      await until(`${user} disconnected`, () => rec.disconnects.length >= 1);
      await until(`${user} given up or back`, () => !rec.socket.active || rec.connects.length >= 2);
      outcomes.push(
        `${rec.disconnects.map((d) => d.reason).join(", ")}${rec.connects.length > 1 ? ", came back" : ""}`,
      );
      rec.socket.close();
    }
    expect(outcomes).toEqual(seq(20).map(() => "io server disconnect"));
  });

  for (const code of [4001, 4000, 4999]) {
    it(`code ${code}: the transport is closed; the client comes back by itself, recovered, nothing lost`, async () => {
      const user = `back-${code}`;
      const rec = open(user);
      await connected(rec);
      await api.publish({ room: `user:${user}`, event: "n", data: { n: 1 } });
      await until("event 1", () => rec.numbers("n").length === 1);
      await api.disconnect(user, code);
      await api.publish({ room: `user:${user}`, event: "n", data: { n: 2 } });
      await connected(rec, 2);
      await api.publish({ room: `user:${user}`, event: "n", data: { n: 3 } });
      await until("events 2 and 3", () => rec.numbers("n").length >= 3);
      expect(rec.disconnects.map((d) => d.reason)).toEqual(["transport close"]);
      expect(rec.connects.map((c) => c.recovered)).toEqual([false, true]);
      expect(rec.numbers("n")).toEqual([1, 2, 3]);
    });
  }
});

describe("limits", () => {
  it("max_connections: the next CONNECT gets connect_error too_many_connections (not retried by the client)", async () => {
    const first = open("lim1", limited.http);
    const second = open("lim2", limited.http);
    await Promise.all([connected(first), connected(second)]);
    const third = open("lim3", limited.http);
    await until("the third's connect_error", () => third.connectErrors.length === 1);
    expect(third.connectErrors[0]?.code).toBe("too_many_connections");
    expect(third.socket.active).toBe(false);
    expect(third.connects).toEqual([]);
    second.socket.close();
    // Its slot is free once the node has closed the session: then the app's connect() succeeds.
    await until(
      "one connection open on the node",
      async () => (await openConnections([{ id: "l2", http: limited.http }])).length === 1,
    );
    third.socket.connect();
    await connected(third);
    expect(third.connects[0]?.recovered).toBe(false);
    third.socket.close();
  });

  it("emit rate: past the burst, typing acks say rate_limited; rooms per connection: too_large", async () => {
    const lapi = new Api(limited.http);
    await lapi.members("dialog:l1", ["lim1"]);
    await lapi.members("dialog:l2", ["lim1"]);
    const rec = recs.find((r) => r.user === "lim1") as Rec;
    // user:, org: and one dialog make 3, the limit.
    expect(await ask(rec, "subscribe:chat", { chatId: "l1" })).toMatchObject({ type: "ok" });
    expect(await ask(rec, "subscribe:chat", { chatId: "l2" })).toMatchObject({ type: "error", code: "too_large" });
    const replies: string[] = [];
    for (const _ of seq(5)) {
      const reply = await ask(rec, "typing:start", { chatId: "l1" });
      replies.push(reply.type === "ok" ? "ok" : String(reply.code));
    }
    expect(replies).toEqual(["ok", "ok", "ok", "rate_limited", "rate_limited"]);
  });
});
