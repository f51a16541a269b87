// A real browser: Debian's chromium through playwright-core loads a page (its own origin, so the
// gateway is cross-origin) that uses socket.io-client's browser build (dist/socket.io.min.js) with
// `auth` as a function fetching a token from the page's backend at every CONNECT. Three pages
// (alice and bob on the default transports, dave polling only) talk through the local cluster's
// nginx, which sends every /socket.io/ request round-robin to the next node. alice types; the
// backend publishes her messages with exclude_user; bob's node is killed mid-stream. bob and dave
// get every message once and in order, bob recovered on another node; alice gets none.
import { mkdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Cluster, startCluster } from "../helpers/cluster.js";
import { PKG_ROOT, until } from "../helpers/procs.js";
import { Api, openConnections, type Reply, seq, signToken } from "../helpers/sio.js";

const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const RESULTS = join(PKG_ROOT, "test-results");
const PAGE = join(PKG_ROOT, "test", "browser", "page");
const BUILD = join(PKG_ROOT, "node_modules", "socket.io-client", "dist", "socket.io.min.js");

interface PageState {
  user: string;
  got: { event: string; args: unknown[] }[];
  connects: { recovered: boolean; transport: string }[];
  disconnects: string[];
  tokens: number;
  messages: number[];
  typing: unknown[];
}

let cluster: Cluster | undefined;
let site: Server | undefined;
let siteUrl = "";
let browser: Browser | undefined;
/** Tokens the page's backend minted, per user. */
const minted: Record<string, number> = {};

beforeAll(async () => {
  cluster = await startCluster();
  const files: Record<string, [string, string]> = {
    "/": [join(PAGE, "index.html"), "text/html"],
    "/app.js": [join(PAGE, "app.js"), "text/javascript"],
    "/socket.io.min.js": [BUILD, "text/javascript"],
  };
  site = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/token") {
      const user = url.searchParams.get("user") ?? "";
      minted[user] = (minted[user] ?? 0) + 1;
      res.writeHead(200, { "content-type": "text/plain" }).end(signToken({ sub: user, org: "acme", ttl: 3600 }));
      return;
    }
    const file = files[url.pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": file[1] }).end(readFileSync(file[0]));
  });
  await new Promise<void>((ok) => site?.listen(0, "127.0.0.1", ok));
  const address = site.address();
  siteUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await new Promise((ok) => (site ? site.close(ok) : ok(undefined)));
  cluster?.stop();
});

const state = (page: Page) => page.evaluate(() => (window as unknown as { rc: PageState }).rc);
const emit = (page: Page, event: string, arg: unknown) =>
  page.evaluate(
    ([e, a]) =>
      (
        window as unknown as {
          rc: { socket: { timeout(ms: number): { emitWithAck(e: string, a: unknown): Promise<Reply> } } };
        }
      ).rc.socket
        .timeout(5_000)
        .emitWithAck(e as string, a),
    [event, arg] as const,
  );

async function openAs(user: string, transports?: string): Promise<{ page: Page; errors: string[] }> {
  const context = await (browser as Browser).newContext({ viewport: { width: 390, height: 420 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const query = new URLSearchParams({ user, gateway: (cluster as Cluster).lb, ...(transports ? { transports } : {}) });
  await page.goto(`${siteUrl}/?${query}`);
  await until(`${user}'s page connected`, async () => (await state(page)).connects.length === 1);
  return { page, errors };
}

it("three browser pages chat through round-robin nginx; bob's node killed mid-stream: nothing lost, nothing twice", async () => {
  const started = Date.now();
  const c = cluster as Cluster;
  const api = new Api(c.lb);
  await api.members("dialog:3", ["alice", "bob", "dave"]);
  const count = (ids: string[], id: string) => ids.filter((x) => x === id).length;
  const base = await openConnections(c.nodes);
  const bob = await openAs("bob");
  const held = await until("bob's node", async () => {
    const now = await openConnections(c.nodes);
    const grew = c.nodes.filter((n) => count(now, n.id) > count(base, n.id));
    return now.length === base.length + 1 && grew.length === 1 ? grew[0]?.id : undefined;
  });
  const alice = await openAs("alice");
  const dave = await openAs("dave", "polling");
  const pages = [alice, bob, dave];
  // The default transports upgrade to WebSocket (through nginx, to whichever node it picks).
  await until("alice and bob upgraded", async () =>
    (
      await Promise.all(
        [alice, bob].map((p) =>
          p.page.evaluate(
            () =>
              (window as unknown as { rc: { socket: { io: { engine: { transport: { name: string } } } } } }).rc.socket
                .io.engine.transport.name,
          ),
        ),
      )
    ).every((t) => t === "websocket"),
  );
  for (const p of pages) {
    expect(await emit(p.page, "subscribe:chat", { chatId: 3 })).toMatchObject({ type: "ok", room: "dialog:3" });
  }

  // alice types: bob and dave see it, with who and where.
  expect(await emit(alice.page, "typing:start", { chatId: 3 })).toMatchObject({ type: "ok" });
  for (const p of [bob, dave]) {
    await until("the typing indicator", async () => (await state(p.page)).typing.length === 1);
    expect(await p.page.textContent("#typing")).toBe("alice is typing…");
    expect((await state(p.page)).typing).toEqual([{ from: "alice", room: "dialog:3" }]);
  }
  expect(await emit(alice.page, "typing:stop", { chatId: 3 })).toMatchObject({ type: "ok" });
  await until("the indicator gone", async () => (await bob.page.textContent("#typing")) === "");

  // alice's messages, sent through the backend (REST publish, exclude_user); bob's node dies.
  const N = 60;
  for (const n of seq(N)) {
    const text = `message ${n}`;
    await api.publish({
      room: "dialog:3",
      event: "message:new",
      data: { n, from: "alice", text },
      id: `b-${n}`,
      exclude_user: "alice",
    });
    if (n === 20) c.kill(held as string);
    await new Promise((r) => setTimeout(r, 20));
  }
  await until(
    "every message at bob and dave",
    async () => (await Promise.all([bob, dave].map((p) => state(p.page)))).every((s) => s.messages.length >= N),
    30_000,
  ).catch(async (e: unknown) => {
    // Say what each page had, so that a rare failure can be told apart: a message missing from
    // a recovered session, or a session that was not recovered.
    const seen = (await Promise.all([bob, dave].map((p) => state(p.page)))).map(
      (s) =>
        `${s.user}: ${s.messages.length} messages, missing ${JSON.stringify(seq(N).filter((n) => !s.messages.includes(n)))}, ` +
        `connects ${JSON.stringify(s.connects)}, disconnects ${JSON.stringify(s.disconnects)}`,
    );
    throw new Error(`${(e as Error).message}; ${seen.join("; ")}; bob's node ${String(held)}`);
  });
  await api.publish({ room: "user:alice", event: "sentinel", data: {} });
  await until("alice's sentinel", async () => (await state(alice.page)).got.some((g) => g.event === "sentinel"));

  const [a, b, d] = await Promise.all(pages.map((p) => state(p.page)));
  for (const s of [b, d] as PageState[]) {
    expect(s.messages, s.user).toEqual(seq(N));
    expect(
      s.connects.slice(1).map((x) => x.recovered),
      s.user,
    ).toEqual(s.connects.slice(1).map(() => true));
  }
  expect(b?.connects.length).toBeGreaterThanOrEqual(2);
  expect(b?.disconnects[0]).toMatch(/^transport (close|error)$/);
  // One token per CONNECT, fetched by the auth function.
  expect(b?.tokens).toBe(b?.connects.length);
  expect(minted.bob).toBe(b?.connects.length);
  expect(a?.messages).toEqual([]);
  expect(
    await dave.page.evaluate(
      () =>
        (window as unknown as { rc: { socket: { io: { engine: { transport: { name: string } } } } } }).rc.socket.io
          .engine.transport.name,
    ),
  ).toBe("polling");
  expect(await bob.page.textContent("#count")).toBe(`${N} messages in dialog:3`);
  expect(pages.flatMap((p) => p.errors)).toEqual([]);

  mkdirSync(RESULTS, { recursive: true });
  const shots = await Promise.all(pages.map((p) => p.page.screenshot()));
  const composite = await (browser as Browser).newPage({ viewport: { width: 1240, height: 470 } });
  await composite.setContent(
    `<body style="margin:0;padding:12px;background:#c9d2dd;font:13px system-ui;display:flex;gap:12px">${shots
      .map(
        (png, i) =>
          `<figure style="margin:0"><figcaption style="padding:0 0 6px 2px">${
            ["alice (sender: none of her own)", `bob (node ${held} killed, recovered)`, "dave (polling only)"][i]
          }</figcaption><img style="display:block;border-radius:6px" src="data:image/png;base64,${png.toString("base64")}"></figure>`,
      )
      .join("")}</body>`,
  );
  await composite.screenshot({ path: join(RESULTS, "socketio-browser.png") });
  console.log(
    `browser: ${N} messages; bob on node ${held} (killed after 20), ${(b?.connects.length ?? 1) - 1} reconnect(s), recovered; ` +
      `dave polling; each got ${N} once and in order; alice 0; ${Date.now() - started} ms`,
  );
});
