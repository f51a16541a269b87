// The page's app: socket.io-client's browser build (global `io`), a token from the page's own
// backend at every CONNECT (`auth` as a function), the seed 001 events. The test reads `window.rc`.
const params = new URLSearchParams(location.search);
const user = params.get("user");
const transports = params.get("transports");
const rc = { user, got: [], connects: [], disconnects: [], tokens: 0, messages: [], typing: [] };
window.rc = rc;
document.getElementById("who").textContent = user;

const socket = io(params.get("gateway"), {
  auth: (cb) => {
    fetch(`/token?user=${encodeURIComponent(user)}`)
      .then((r) => r.text())
      .then((token) => {
        rc.tokens++;
        cb({ token });
      });
  },
  reconnectionDelay: 200,
  reconnectionDelayMax: 1000,
  ...(transports ? { transports: transports.split(",") } : {}),
});
rc.socket = socket;

const status = document.getElementById("status");
socket.on("connect", () => {
  rc.connects.push({ recovered: socket.recovered, transport: socket.io.engine.transport.name });
  status.className = "connected";
  status.textContent = `connected (${socket.io.engine.transport.name})${socket.recovered ? ", recovered" : ""}`;
  socket.io.engine.once("upgrade", (t) => {
    status.textContent = `connected (${t.name})${socket.recovered ? ", recovered" : ""}`;
  });
});
socket.on("disconnect", (reason) => {
  rc.disconnects.push(reason);
  status.className = "";
  status.textContent = `disconnected: ${reason}`;
});
socket.onAny((event, ...args) => rc.got.push({ event, args }));
socket.on("message:new", (message) => {
  rc.messages.push(message.n);
  const li = document.createElement("li");
  li.value = message.n;
  li.textContent = `${message.from}: ${message.text}`;
  const list = document.getElementById("messages");
  list.append(li);
  // The newest 14 in view; the count of all above them.
  if (list.children.length > 14) list.firstElementChild.remove();
  document.getElementById("count").textContent = `${rc.messages.length} messages in dialog:3`;
});
socket.on("typing:start", (_data, meta) => {
  rc.typing.push(meta);
  document.getElementById("typing").textContent = `${meta.from} is typing…`;
});
socket.on("typing:stop", () => {
  document.getElementById("typing").textContent = "";
});
