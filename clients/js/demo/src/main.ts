// The demo chat's page: vanilla TypeScript on roomcast-client. Everything real-time goes through
// the client: it reconnects, refreshes the token, resubscribes the open dialog with `since`, drops
// duplicates and keeps positions in localStorage, so this file only renders what arrives.
import { type ConnectionState, RoomcastClient, type RoomEvent } from "roomcast-client";

interface Message {
  id: string;
  seq: number;
  from: string;
  text: string;
  at: number;
}
interface Summary {
  dialog: string;
  peer: string;
  unread: number;
  last: Message | null;
}

const me = new URLSearchParams(location.search).get("user") ?? "alice";
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

async function api<T>(path: string, body?: object): Promise<T> {
  const res = await fetch(`/api/${path}`, {
    method: body ? "POST" : "GET",
    headers: { "x-demo-user": me, "content-type": "application/json" },
    body: body && JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

const dialogs = new Map<string, Summary>();
/** The open dialog's messages by id: whatever the backend and the socket both give lands once. */
let open: { id: string; messages: Map<string, Message>; peerReadUpTo: number } | undefined;
let typingTimer: ReturnType<typeof setTimeout> | undefined;

const { ws } = await api<{ ws: string }>("config");
const client = new RoomcastClient({
  url: ws,
  getToken: async () => (await api<{ token: string }>("token")).token,
  storage: localStorage,
  storageKey: `roomcast-demo:${me}`,
  log: (level, message, fields) => console.debug(`[roomcast] ${level} ${message}`, fields ?? ""),
});

client.on("state", renderStatus);
client.on("event", (e: RoomEvent) => {
  if (e.room === `user:${me}` && e.event === "dialog:updated") {
    const s = e.data as Summary;
    dialogs.set(s.dialog, s);
    renderDialogs();
  } else if (e.room === `user:${me}` && e.event === "messages:read") {
    const r = e.data as { dialog: string; upTo: number };
    if (open?.id === r.dialog) {
      open.peerReadUpTo = Math.max(open.peerReadUpTo, r.upTo);
      renderMessages();
    }
  } else if (open && e.room === `dialog:${open.id}` && e.event === "message:new") {
    add(e.data as Message);
    showTyping(false);
    void markRead();
  }
});
client.on("ephemeral", (e) => {
  if (open && e.room === `dialog:${open.id}` && e.from !== me) showTyping(e.event === "typing:start", e.from);
});
// History could not cover the gap: the backend has the truth.
client.on("reload", (r) => {
  if (r.room === `user:${me}`) void loadDialogs();
  else if (open && r.room === `dialog:${open.id}`) void loadMessages();
});
client.on("removed", (r) => {
  if (open && r.room === `dialog:${open.id}`) close();
});
// The browser knows when the network is back: do not wait for the backoff.
window.addEventListener("online", () => client.reconnectNow());
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") client.reconnectNow();
});

async function loadDialogs(): Promise<void> {
  for (const s of await api<Summary[]>("dialogs")) dialogs.set(s.dialog, s);
  renderDialogs();
}

async function openDialog(id: string): Promise<void> {
  if (open?.id === id) return;
  if (open) close();
  open = { id, messages: new Map(), peerReadUpTo: 0 };
  renderDialogs();
  $("placeholder").hidden = true;
  $("conversation").hidden = false;
  $("peer").textContent = dialogs.get(id)?.peer ?? id;
  // Subscribe first, then load: a message published in between comes from one or the other.
  await client.subscribe(`dialog:${id}`);
  await loadMessages();
  $<HTMLInputElement>("text").focus();
}

function close(): void {
  if (!open) return;
  client.unsubscribe(`dialog:${open.id}`);
  open = undefined;
  $("conversation").hidden = true;
  $("placeholder").hidden = false;
  renderDialogs();
}

async function loadMessages(): Promise<void> {
  if (!open) return;
  const id = open.id;
  const page = await api<{ messages: Message[]; peerReadUpTo: number }>(`messages?dialog=${encodeURIComponent(id)}`);
  if (open?.id !== id) return;
  for (const m of page.messages) open.messages.set(m.id, m);
  open.peerReadUpTo = Math.max(open.peerReadUpTo, page.peerReadUpTo);
  renderMessages();
  await markRead();
}

function add(m: Message): void {
  if (!open) return;
  open.messages.set(m.id, m);
  renderMessages();
}

async function markRead(): Promise<void> {
  if (!open || document.visibilityState !== "visible") return;
  const theirs = [...open.messages.values()].filter((m) => m.from !== me);
  const upTo = Math.max(0, ...theirs.map((m) => m.seq));
  if (upTo > 0) await api("read", { dialog: open.id, upTo });
}

function showTyping(on: boolean, who = ""): void {
  clearTimeout(typingTimer);
  $("typing").textContent = on ? `${who} is typing…` : "";
  // A lost typing:stop (emits are at most once) must not leave the indicator on.
  if (on) typingTimer = setTimeout(() => showTyping(false), 6000);
}

function renderStatus(s: ConnectionState): void {
  const el = $("status");
  el.className = `status ${s.status}`;
  el.dataset.node = s.status === "connected" ? s.node : "";
  if (s.status === "connected") el.textContent = `connected · node ${s.node}`;
  else if (s.status === "connecting") el.textContent = "connecting…";
  else if (s.retryAt)
    el.textContent = `reconnecting in ${Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000))} s (${s.reason})`;
  else el.textContent = `offline (${s.reason})`;
}

function renderDialogs(): void {
  const list = $("dialogs");
  list.replaceChildren(
    ...[...dialogs.values()].map((s) => {
      const li = document.createElement("li");
      li.className = `dialog${open?.id === s.dialog ? " open" : ""}`;
      li.dataset.dialog = s.dialog;
      const peer = Object.assign(document.createElement("span"), { className: "peer", textContent: s.peer });
      const last = Object.assign(document.createElement("span"), {
        className: "last",
        textContent: s.last ? `${s.last.from === me ? "you: " : ""}${s.last.text}` : "no messages yet",
      });
      li.append(peer, last);
      // The open dialog is being read: no badge for it.
      if (s.unread > 0 && open?.id !== s.dialog) {
        li.append(Object.assign(document.createElement("span"), { className: "badge", textContent: String(s.unread) }));
      }
      li.onclick = () => void openDialog(s.dialog);
      return li;
    }),
  );
}

function renderMessages(): void {
  if (!open) return;
  const list = $("messages");
  const sorted = [...open.messages.values()].sort((a, b) => a.seq - b.seq);
  list.replaceChildren(
    ...sorted.map((m) => {
      const li = document.createElement("li");
      li.className = `msg ${m.from === me ? "mine" : "theirs"}`;
      li.dataset.id = m.id;
      const text = Object.assign(document.createElement("span"), { className: "text", textContent: m.text });
      const time = new Date(m.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      const meta = Object.assign(document.createElement("span"), { className: "meta", textContent: time });
      if (m.from === me) {
        const read = open && m.seq <= open.peerReadUpTo;
        meta.append(
          " ",
          Object.assign(document.createElement("span"), {
            className: `receipt${read ? " read" : ""}`,
            textContent: read ? "✓✓" : "✓",
          }),
        );
      }
      li.append(text, meta);
      return li;
    }),
  );
  list.scrollTop = list.scrollHeight;
}

$("back").onclick = close;
$<HTMLInputElement>("text").oninput = () => open && client.typing(`dialog:${open.id}`);
$<HTMLFormElement>("send").onsubmit = async (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>("text");
  const text = input.value.trim();
  if (!open || !text) return;
  input.value = "";
  client.stopTyping(`dialog:${open.id}`);
  const { message } = await api<{ message: Message }>("messages", { dialog: open.id, text });
  add(message);
};

$("me").textContent = `signed in as ${me}`;
renderStatus(client.state);
client.connect();
await loadDialogs();
