// A WebSocket stand-in for unit tests: records what the client sends and lets a test play the
// server (open, frames, close). Only unit tests use it; integration tests use real sockets.
import { vi } from "vitest";
import { RoomcastClient } from "../../src/index.js";
import type { ClientOptions, WebSocketLike } from "../../src/types.js";

type Frame = Record<string, unknown>;

export class FakeWebSocket implements WebSocketLike {
  static all: FakeWebSocket[] = [];
  readyState = 0;
  readonly sent: Frame[] = [];
  closedWith: number | undefined;
  onopen: ((e: unknown) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;

  constructor(readonly url: string) {
    FakeWebSocket.all.push(this);
  }

  static last(): FakeWebSocket {
    const ws = FakeWebSocket.all.at(-1);
    if (!ws) throw new Error("no socket was opened");
    return ws;
  }

  /** Answer the client's pings at once, as a healthy server does. */
  autoPong = true;

  send(data: string): void {
    if (this.readyState !== 1) throw new Error(`send in readyState ${this.readyState}`);
    const frame = JSON.parse(data) as Frame;
    this.sent.push(frame);
    if (frame.type === "ping" && this.autoPong) this.receive({ type: "pong" });
  }

  close(code?: number): void {
    this.closedWith = code ?? 1005;
    this.readyState = 3;
  }

  // ---- the server's side ----
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(frame: Frame): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  serverClose(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Frames of one type the client sent. */
  frames(type: string): Frame[] {
    return this.sent.filter((f) => f.type === type);
  }

  /** The last frame of a type, failing when there is none. */
  lastOf(type: string): Frame {
    const f = this.frames(type).at(-1);
    if (!f) throw new Error(`no ${type} frame sent; sent: ${JSON.stringify(this.sent)}`);
    return f;
  }
}

export const EPOCH = "e1";

export function connectedFrame(over: Frame = {}): Frame {
  return {
    type: "connected",
    conn: String(FakeWebSocket.all.length),
    node: "n1",
    user: "u1",
    org: "o1",
    rooms: ["user:u1", "org:o1"],
    positions: { "user:u1": { offset: 0, epoch: EPOCH }, "org:o1": { offset: 0, epoch: EPOCH } },
    expires_at: Math.floor(Date.now() / 1000) + 3600,
    ping_interval_ms: 25000,
    ...over,
  };
}

/** Lets pending promise callbacks (getToken, storage) run without moving the fake clock. */
export async function settle(): Promise<void> {
  await vi.advanceTimersByTimeAsync(0);
}

export function makeClient(over: Partial<ClientOptions> = {}): { client: RoomcastClient; tokens: string[] } {
  const tokens: string[] = [];
  const client = new RoomcastClient({
    url: "ws://gw/ws",
    WebSocket: FakeWebSocket,
    getToken: () => {
      const t = `tok-${tokens.length + 1}`;
      tokens.push(t);
      return t;
    },
    ...over,
  });
  return { client, tokens };
}

/** Connects a client to a new fake socket and plays `connected`; returns that socket. */
export async function up(client: RoomcastClient, over: Frame = {}): Promise<FakeWebSocket> {
  if (client.state.status === "disconnected" && client.state.reason === "idle") client.connect();
  await settle();
  const ws = FakeWebSocket.last();
  ws.open();
  ws.receive(connectedFrame(over));
  await settle();
  return ws;
}

export function event(room: string, offset: number, id = `${room}#${offset}`, epoch = EPOCH): Frame {
  return { type: "event", room, event: "message:new", data: { n: offset }, id, offset, epoch };
}
