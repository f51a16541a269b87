// The demo chat's backend: the smallest one that does what a chat backend must (seed 004's flow).
// Two users, one dialog. It mints connection tokens, keeps messages, unread counters and read
// marks in memory, and publishes through the gateway's API with roomcast-client/server:
//   message:new      -> dialog:<id>, to the other member, never the sender (exclude_user)
//   dialog:updated   -> user:<member>, the dialog's unread counter and last message
//   messages:read    -> user:<sender>, how far the other member has read (read receipts)
// No framework: node:http and node:crypto (through signToken). Not an authentication example:
// the page says who it is with a header.
//
//   PORT             where the page and /api are served (default 5173; 0 = any free port)
//   ROOMCAST_URL     the gateway's HTTP address for /api (default http://127.0.0.1:8080)
//   ROOMCAST_WS      the WebSocket address the browser connects to (default ROOMCAST_URL's /ws)
//   ROOMCAST_JWT_SECRET, ROOMCAST_API_KEY   (default the development values of `make run`)
//   TOKEN_TTL        connection token lifetime in seconds (default 600)
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RoomcastApi, signToken } from "../dist/esm/server.js";

const PUBLIC = fileURLToPath(new URL("./public/", import.meta.url));
const GATEWAY = process.env.ROOMCAST_URL ?? "http://127.0.0.1:8080";
const WS = process.env.ROOMCAST_WS ?? `${GATEWAY.replace(/^http/, "ws")}/ws`;
const SECRET = process.env.ROOMCAST_JWT_SECRET ?? "dev-secret-do-not-use-in-production";
const TTL = Number(process.env.TOKEN_TTL ?? 600);
const api = new RoomcastApi({ url: GATEWAY, apiKey: process.env.ROOMCAST_API_KEY ?? "dev-api-key", retries: 8 });

const USERS = ["alice", "bob"];
const DIALOGS = [{ id: "alice-bob", members: ["alice", "bob"] }];
/** dialog id -> messages, each { id, seq, from, text, at } */
const messages = new Map(DIALOGS.map((d) => [d.id, []]));
/** `${dialog}/${user}` -> the seq of the last message the user has read */
const readUpTo = new Map();
let seq = 0;
let notice = 0;

const dialog = (id) => DIALOGS.find((d) => d.id === id);
const peerOf = (d, user) => d.members.find((m) => m !== user);
const unread = (d, user) =>
  messages.get(d.id).filter((m) => m.from !== user && m.seq > (readUpTo.get(`${d.id}/${user}`) ?? 0)).length;
const summary = (d, user) => ({
  dialog: d.id,
  peer: peerOf(d, user),
  unread: unread(d, user),
  last: messages.get(d.id).at(-1) ?? null,
});

/** Tells a member's every device the dialog's unread counter and last message. */
function notify(d, user) {
  return api.publish({ room: `user:${user}`, event: "dialog:updated", data: summary(d, user), id: `upd-${++notice}` });
}

async function ensureMembers() {
  for (const d of DIALOGS) await api.members(`dialog:${d.id}`, { add: d.members });
}

const routes = {
  "GET /api/config": () => ({ ws: WS }),
  "GET /api/token": async (user) => {
    // Member sets live in the gateway (memory or Redis): add them again, it is idempotent.
    await ensureMembers();
    return { token: signToken({ sub: user, org: "demo", ttl: TTL }, SECRET) };
  },
  "GET /api/dialogs": (user) => DIALOGS.filter((d) => d.members.includes(user)).map((d) => summary(d, user)),
  "GET /api/messages": (user, query) => {
    const d = dialog(query.get("dialog"));
    if (!d?.members.includes(user)) throw Object.assign(new Error("no such dialog"), { status: 404 });
    return { messages: messages.get(d.id), peerReadUpTo: readUpTo.get(`${d.id}/${peerOf(d, user)}`) ?? 0 };
  },
  "POST /api/messages": async (user, _, body) => {
    const d = dialog(body.dialog);
    const text = String(body.text ?? "").slice(0, 2000);
    if (!d?.members.includes(user) || !text) throw Object.assign(new Error("bad message"), { status: 400 });
    const message = { id: `m-${++seq}`, seq, from: user, text, at: Date.now() };
    messages.get(d.id).push(message);
    // The message's own id is the publish id: a retry (503, lost reply) is delivered once.
    await api.publish({
      room: `dialog:${d.id}`,
      event: "message:new",
      data: message,
      id: message.id,
      excludeUser: user,
    });
    await Promise.all(d.members.map((m) => notify(d, m)));
    return { message };
  },
  "POST /api/read": async (user, _, body) => {
    const d = dialog(body.dialog);
    if (!d?.members.includes(user)) throw Object.assign(new Error("no such dialog"), { status: 404 });
    const key = `${d.id}/${user}`;
    const upTo = Math.max(readUpTo.get(key) ?? 0, Number(body.upTo) || 0);
    if (upTo === readUpTo.get(key)) return { upTo };
    readUpTo.set(key, upTo);
    const peer = peerOf(d, user);
    await Promise.all([
      notify(d, user),
      api.publish({
        room: `user:${peer}`,
        event: "messages:read",
        data: { dialog: d.id, by: user, upTo },
        id: `read-${++notice}`,
      }),
    ]);
    return { upTo };
  },
};

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".png": "image/png",
};

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://demo");
  const send = (status, type, body) => {
    res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
    res.end(body);
  };
  try {
    const route = routes[`${req.method} ${url.pathname}`];
    if (route) {
      const user = String(req.headers["x-demo-user"] ?? "");
      if (!USERS.includes(user)) return send(401, "application/json", '{"error":"who are you?"}');
      let body = {};
      if (req.method === "POST") {
        let raw = "";
        for await (const chunk of req) raw += chunk;
        body = JSON.parse(raw || "{}");
      }
      return send(200, "application/json", JSON.stringify(await route(user, url.searchParams, body)));
    }
    const file = url.pathname === "/" ? "index.html" : url.pathname.slice(1);
    if (file.includes("..") || !TYPES[extname(file)]) return send(404, "text/plain", "not found");
    send(200, TYPES[extname(file)], await readFile(join(PUBLIC, file)));
  } catch (e) {
    send(
      e.status ?? (e.code === "ENOENT" ? 404 : 500),
      "application/json",
      JSON.stringify({ error: String(e.message ?? e) }),
    );
  }
});

await ensureMembers();
server.listen(Number(process.env.PORT ?? 5173), "127.0.0.1", () => {
  const { port } = server.address();
  console.log(`demo: http://127.0.0.1:${port}/  (open ?user=alice and ?user=bob; gateway ${GATEWAY}, WebSocket ${WS})`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
