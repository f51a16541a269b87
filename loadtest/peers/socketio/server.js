// Socket.IO 4.8 peer for roomcast-loadtest: the same rooms shape as roomcast, over Socket.IO v4.
//
// - connect with auth {"token": "<JWT>"} (HS256 with JWT_SECRET, ES256 with JWT_PUBLIC_KEY);
//   joins user:<sub> and org:<org>, then emits "connected";
// - "subscribe" / "unsubscribe" events {"room": ...} acknowledged with {"ok": true};
// - POST /publish {"room", "event", "data"} emits to the room (every node through Redis when
//   REDIS_URL is set, with @socket.io/redis-adapter in sharded mode).
//
// Environment: LISTEN (default 127.0.0.1:3000), REDIS_URL, JWT_SECRET, JWT_PUBLIC_KEY.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const { Server } = require("socket.io");

const secret = process.env.JWT_SECRET;
const publicKey = process.env.JWT_PUBLIC_KEY ? crypto.createPublicKey(fs.readFileSync(process.env.JWT_PUBLIC_KEY)) : null;

// JWT verification by hand (HS256 / ES256 only), so the peer needs no extra package.
function verify(token) {
  const parts = String(token).split(".");
  if (parts.length !== 3) throw new Error("malformed token");
  const header = JSON.parse(Buffer.from(parts[0], "base64url"));
  const signed = `${parts[0]}.${parts[1]}`;
  const sig = Buffer.from(parts[2], "base64url");
  let ok = false;
  if (header.alg === "HS256" && secret) {
    const mac = crypto.createHmac("sha256", secret).update(signed).digest();
    ok = mac.length === sig.length && crypto.timingSafeEqual(mac, sig);
  } else if (header.alg === "ES256" && publicKey) {
    ok = crypto.verify("sha256", Buffer.from(signed), { key: publicKey, dsaEncoding: "ieee-p1363" }, sig);
  }
  if (!ok) throw new Error("bad signature");
  const claims = JSON.parse(Buffer.from(parts[1], "base64url"));
  if (typeof claims.sub !== "string" || !(claims.exp > Date.now() / 1000)) throw new Error("bad claims");
  return claims;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

async function main() {
  const [host, port] = (process.env.LISTEN || "127.0.0.1:3000").split(":");
  let io;
  const server = http.createServer(async (req, res) => {
    if (req.method === "POST" && req.url === "/publish") {
      try {
        const body = JSON.parse(await readBody(req));
        io.to(body.room).emit(body.event, body.data);
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch (e) {
        res.writeHead(400).end(String(e));
      }
    } else if (req.url === "/healthz") {
      res.writeHead(200).end("ok\n");
    } else if (!req.url.startsWith("/socket.io/")) {
      res.writeHead(404).end();
    }
  });
  server.keepAliveTimeout = 600000;
  const options = { transports: ["websocket"], serveClient: false };
  if (process.env.REDIS_URL) {
    const { createClient } = require("redis");
    const { createShardedAdapter } = require("@socket.io/redis-adapter");
    const pubClient = createClient({ url: process.env.REDIS_URL });
    const subClient = pubClient.duplicate();
    // An 'error' event without a listener ends the Node process; with these listeners the
    // clients reconnect on their own when Redis comes back (make soak kills and restarts it).
    pubClient.on("error", (e) => console.error("redis pub client:", e.message));
    subClient.on("error", (e) => console.error("redis sub client:", e.message));
    await Promise.all([pubClient.connect(), subClient.connect()]);
    options.adapter = createShardedAdapter(pubClient, subClient);
  }
  io = new Server(server, options);
  io.use((socket, next) => {
    try {
      socket.data.claims = verify(socket.handshake.auth && socket.handshake.auth.token);
      next();
    } catch (e) {
      next(new Error("unauthorized"));
    }
  });
  io.on("connection", (socket) => {
    // Keep per-connection memory down, as the Socket.IO memory guide recommends.
    socket.conn.request = null;
    const claims = socket.data.claims;
    socket.join(`user:${claims.sub}`);
    if (claims.org) socket.join(`org:${claims.org}`);
    socket.on("subscribe", (req, ack) => {
      socket.join(req.room);
      if (typeof ack === "function") ack({ ok: true });
    });
    socket.on("unsubscribe", (req, ack) => {
      socket.leave(req.room);
      if (typeof ack === "function") ack({ ok: true });
    });
    socket.emit("connected", { user: claims.sub });
  });
  server.listen(Number(port), host, 4096);
  const stop = () => io.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
