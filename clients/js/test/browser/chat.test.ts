// A real browser: Debian's chromium through playwright-core. Two browser contexts (alice and bob)
// chat through the demo behind the local nginx cluster (deploy/local/cluster.sh: Redis, three
// nodes, nginx). Mid-conversation the node bob is connected to is killed (SIGKILL); nothing is
// lost, nothing is shown twice, typing and read receipts work, unread counters are right, and the
// test saves a screenshot (test-results/demo-chat.png).
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { API_KEY, BIN, freePort, JS_ROOT, type Proc, REPO, SECRET, start, tempDir, until } from "../helpers/procs.js";

const CLUSTER = join(REPO, "deploy", "local", "cluster.sh");
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const RESULTS = join(JS_ROOT, "test-results");

const runDir = tempDir("browser");
let clusterEnv: Record<string, string> = {};
let clusterStarted = false;
let demo: Proc | undefined;
let browser: Browser | undefined;
let demoUrl = "";

beforeAll(async () => {
  const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  clusterEnv = {
    RUN_DIR: runDir.path,
    ROOMCAST_BIN: BIN,
    LB_PORT: String(ports[0]),
    NODE_PORTS: `${ports[1]} ${ports[2]} ${ports[3]}`,
    REDIS_PORT: String(ports[4]),
    PROMETHEUS_PORT: String(ports[5]),
    ROOMCAST_JWT_SECRET: SECRET,
    ROOMCAST_API_KEY: API_KEY,
  };
  clusterStarted = true;
  execFileSync(CLUSTER, ["start"], { env: { ...process.env, ...clusterEnv }, stdio: ["ignore", "ignore", "inherit"] });
  const lb = `127.0.0.1:${clusterEnv.LB_PORT}`;
  demo = start("demo", "node", [join(JS_ROOT, "demo", "server.mjs")], {
    PORT: "0",
    ROOMCAST_URL: `http://${lb}`,
    ROOMCAST_WS: `ws://${lb}/ws`,
    ROOMCAST_JWT_SECRET: SECRET,
    ROOMCAST_API_KEY: API_KEY,
  });
  demoUrl = await until("the demo's address", () => {
    if (!demo?.alive) throw new Error(`demo exited: ${demo?.output}`);
    return /demo: (http:\/\/127\.0\.0\.1:\d+)\//.exec(demo.output)?.[1];
  });
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await demo?.stop("SIGTERM");
  if (clusterStarted) {
    execFileSync(CLUSTER, ["stop"], { env: { ...process.env, ...clusterEnv }, stdio: ["ignore", "ignore", "inherit"] });
  }
  runDir.remove();
});

async function openAs(user: string): Promise<{ page: Page; sockets: string[]; errors: string[] }> {
  const context = await (browser as Browser).newContext({ viewport: { width: 560, height: 460 } });
  const page = await context.newPage();
  const sockets: string[] = [];
  const errors: string[] = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${demoUrl}/?user=${user}`);
  await page.waitForSelector("#status.connected");
  return { page, sockets, errors };
}

const texts = (page: Page) => page.$$eval("#messages .msg .text", (els) => els.map((e) => e.textContent));
const ids = (page: Page) => page.$$eval("#messages .msg", (els) => els.map((e) => (e as HTMLElement).dataset.id));
const nodeOf = (page: Page) => page.$eval("#status", (e) => (e as HTMLElement).dataset.node ?? "");
const badge = (page: Page) => page.$eval(".dialog", (e) => e.querySelector(".badge")?.textContent ?? "");

async function send(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await page.waitForSelector(`#messages .msg.mine .text:text-is("${text}")`);
}

it("two users chat through nginx and three nodes; a node killed mid-conversation loses nothing", async () => {
  const alice = await openAs("alice");
  const bob = await openAs("bob");
  // Tokens go in the first frame, never in the URL.
  expect([...alice.sockets, ...bob.sockets].every((u) => !u.includes("token"))).toBe(true);

  // alice writes while bob's dialog is closed: bob's unread counter and preview follow.
  await alice.page.click(".dialog");
  for (const t of ["hi bob", "are you there?", "ping me when you are back"]) await send(alice.page, t);
  await until("bob's counter at 3", async () => (await badge(bob.page)) === "3");
  expect(await bob.page.textContent(".dialog .last")).toBe("ping me when you are back");

  // bob opens it: three messages, counter gone, alice sees them read.
  await bob.page.click(".dialog");
  await until("bob sees 3 messages", async () => (await texts(bob.page)).length === 3);
  expect(await badge(bob.page)).toBe("");
  await until("alice's receipts read", async () => (await alice.page.$$(".msg.mine .receipt.read")).length === 3);

  // bob types: alice sees it; sending ends it.
  await bob.page.type("#text", "here now", { delay: 40 });
  await until("alice sees bob typing", async () => (await alice.page.textContent("#typing")) === "bob is typing…");
  await bob.page.press("#text", "Enter");
  await until("alice gets bob's message", async () => (await texts(alice.page)).includes("here now"));
  await until("the typing indicator ends", async () => (await alice.page.textContent("#typing")) === "");

  // Mid-conversation, bob's node dies.
  const victim = await nodeOf(bob.page);
  const alicesNode = await nodeOf(alice.page);
  await send(alice.page, "so, about tomorrow");
  const pid = readFileSync(join(runDir.path, `node-${victim}.pid`), "utf8").trim();
  process.kill(Number(pid), "SIGKILL");
  for (const t of ["shall we meet at ten?", "at the usual place", "bring the slides"]) await send(alice.page, t);
  await until("bob reconnected to another node", async () => {
    const node = await nodeOf(bob.page);
    return node !== "" && node !== victim;
  });
  const expected = [
    "hi bob",
    "are you there?",
    "ping me when you are back",
    "here now",
    "so, about tomorrow",
    "shall we meet at ten?",
    "at the usual place",
    "bring the slides",
  ];
  await until("bob has every message", async () => (await texts(bob.page)).length >= expected.length);
  expect(await texts(bob.page)).toEqual(expected);
  expect(await texts(alice.page)).toEqual(expected);
  expect(new Set(await ids(bob.page)).size).toBe(expected.length);
  await until("alice's receipts all read", async () => (await alice.page.$$(".msg.mine .receipt.read")).length === 7);
  await send(bob.page, "ten works");
  await until("alice gets it", async () => (await texts(alice.page)).at(-1) === "ten works");

  // bob closes the dialog; two more from alice make his counter 2.
  await bob.page.click("#back");
  for (const t of ["great", "see you"]) await send(alice.page, t);
  await until("bob's counter at 2", async () => (await badge(bob.page)) === "2");
  expect(await bob.page.textContent(".dialog .last")).toBe("see you");
  expect(alice.errors.concat(bob.errors)).toEqual([]);

  mkdirSync(RESULTS, { recursive: true });
  const shots = await Promise.all([alice.page.screenshot(), bob.page.screenshot()]);
  const composite = await (browser as Browser).newPage({ viewport: { width: 1160, height: 520 } });
  await composite.setContent(`<body style="margin:0;padding:14px;background:#c9d2dd;font:13px system-ui;display:flex;gap:12px">
    ${shots
      .map(
        (png, i) =>
          `<figure style="margin:0"><figcaption style="padding:0 0 6px 2px;color:#1d2430">${
            i === 0
              ? "alice: the dialog open, read receipts"
              : `bob: dialog closed, 2 unread (his node ${victim} was killed)`
          }</figcaption><img style="display:block;border-radius:6px;box-shadow:0 1px 4px #0003" src="data:image/png;base64,${png.toString("base64")}"></figure>`,
      )
      .join("")}</body>`);
  await composite.screenshot({ path: join(RESULTS, "demo-chat.png") });

  // Opening the dialog again clears the counter, and alice's last messages show as read.
  await bob.page.click(".dialog");
  await until("bob sees all 11", async () => (await texts(bob.page)).length === 11);
  expect(await badge(bob.page)).toBe("");
  await until(
    "alice's receipts all read again",
    async () => (await alice.page.$$(".msg.mine .receipt.read")).length === 9,
  );
  console.log(
    `browser: alice on node ${alicesNode}, bob on node ${victim} (killed), bob back on node ${await nodeOf(bob.page)}; ` +
      `11 messages each side, no duplicates; screenshot ${join(RESULTS, "demo-chat.png")}`,
  );
});
