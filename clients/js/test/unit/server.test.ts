// The backend entry point: a stable id per publish, kept across retries of a 503 (or a lost
// reply), no retry of a refused request, and HS256 tokens the gateway accepts (checked against the
// real gateway in the integration tests).
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ApiError, RoomcastApi, signToken } from "../../src/server.js";

type Call = { url: string; body: Record<string, unknown>; auth: string | null };

function fakeFetch(answers: Array<number | "network">) {
  const calls: Call[] = [];
  const f = async (url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers);
    calls.push({ url: String(url), body: JSON.parse(String(init?.body)), auth: headers.get("authorization") });
    const answer = answers.shift() ?? 200;
    if (answer === "network") throw new TypeError("fetch failed");
    const body =
      answer === 200
        ? { offset: 3, epoch: "e", id: calls.at(-1)?.body.id }
        : { error: answer === 503 ? "unavailable" : "bad_request", message: "no" };
    return new Response(JSON.stringify(body), { status: answer });
  };
  return { calls, fetch: f as typeof fetch };
}

describe("RoomcastApi", () => {
  it("publishes with the API key and the given id, mapping excludeUser", async () => {
    const { calls, fetch } = fakeFetch([200]);
    const api = new RoomcastApi({ url: "http://gw:8080/", apiKey: "k", fetch });
    const out = await api.publish({
      room: "dialog:1",
      event: "message:new",
      data: { t: 1 },
      id: "m-1",
      excludeUser: "u1",
    });
    expect(out).toEqual({ offset: 3, epoch: "e", id: "m-1" });
    expect(calls).toEqual([
      {
        url: "http://gw:8080/api/publish",
        auth: "Bearer k",
        body: { room: "dialog:1", event: "message:new", data: { t: 1 }, id: "m-1", exclude_user: "u1" },
      },
    ]);
  });

  it("retries a 503 and a network error with the same id, made once when none was given", async () => {
    const { calls, fetch } = fakeFetch([503, "network", 503, 200]);
    const api = new RoomcastApi({ url: "http://gw", apiKey: "k", fetch, retryDelay: 1 });
    const out = await api.publish({ room: "dialog:1", event: "x" });
    expect(calls.length).toBe(4);
    const ids = new Set(calls.map((c) => c.body.id));
    expect(ids.size).toBe(1);
    expect(String(out.id)).toMatch(/^[0-9a-f]{32}$/);
    expect(out.id).toBe(calls[0]?.body.id);
  });

  it("does not retry a refused request", async () => {
    const { calls, fetch } = fakeFetch([400]);
    const api = new RoomcastApi({ url: "http://gw", apiKey: "k", fetch, retryDelay: 1 });
    const err = await api.members("dialog:1", { add: ["u1"] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: "bad_request" });
    expect(calls.length).toBe(1);
  });

  it("gives up after `retries` retries with the last failure", async () => {
    const { calls, fetch } = fakeFetch([503, 503, 503]);
    const api = new RoomcastApi({ url: "http://gw", apiKey: "k", fetch, retries: 2, retryDelay: 1 });
    await expect(api.disconnect("u3")).rejects.toMatchObject({ status: 503, code: "unavailable" });
    expect(calls.length).toBe(3);
  });
});

describe("signToken", () => {
  it("signs an HS256 JWT with sub, org, room and exp", () => {
    const token = signToken({ sub: "u1", org: "o1", ttl: 60 }, "secret");
    const [head, payload, sig] = token.split(".");
    expect(JSON.parse(Buffer.from(String(head), "base64url").toString())).toEqual({ alg: "HS256", typ: "JWT" });
    const claims = JSON.parse(Buffer.from(String(payload), "base64url").toString());
    expect(claims.sub).toBe("u1");
    expect(claims.org).toBe("o1");
    expect(claims.exp - Math.floor(Date.now() / 1000)).toBeGreaterThanOrEqual(59);
    expect(claims).not.toHaveProperty("ttl");
    const expected = createHmac("sha256", "secret").update(`${head}.${payload}`).digest("base64url");
    expect(sig).toBe(expected);
    const sub = signToken({ sub: "u1", room: "dialog:1", exp: 5 }, "secret");
    expect(JSON.parse(Buffer.from(String(sub.split(".")[1]), "base64url").toString())).toEqual({
      sub: "u1",
      room: "dialog:1",
      exp: 5,
    });
  });
});
