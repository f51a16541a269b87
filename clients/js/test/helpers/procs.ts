// Real processes for the integration and browser tests: roomcast nodes and redis-server on free
// ports, started in their own process groups and killed with them (also when a test fails, and
// on exit). Readiness is polled with a bounded deadline, never slept for.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const JS_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const REPO = resolve(JS_ROOT, "../..");
/** The gateway binary: ROOMCAST_BIN, else the debug build `cargo test` just made. */
export const BIN =
  process.env.ROOMCAST_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "debug", "roomcast");
export const SECRET = "integration-secret";
export const API_KEY = "integration-api-key";
/** How long any readiness or delivery wait may take before the test fails. */
export const PATIENCE = 20_000;

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) killGroup(child, "SIGKILL");
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** Polls `check` every 20 ms until it returns a value other than undefined/false, or fails after `ms`. */
export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = PATIENCE,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A port nothing listens on right now (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? ok(address.port) : fail(new Error("no port"))));
    });
  });
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `roomcast-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A started process with its output kept for failure messages. */
export class Proc {
  output = "";
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    live.add(child);
    child.stdout?.on("data", (d: Buffer) => {
      this.output += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      this.output += d.toString();
    });
    this.exited = new Promise((ok) =>
      child.once("exit", (code) => {
        live.delete(child);
        ok(code);
      }),
    );
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Signals the process group and waits (bounded) until the process is gone. */
  async stop(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (!this.alive) return;
    killGroup(this.child, signal);
    const timer = setTimeout(() => killGroup(this.child, "SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

export function start(name: string, command: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  return new Proc(name, child);
}

/** Sends PING over RESP and resolves with whether +PONG came back. */
function redisPing(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const socket = createConnection({ port, host: "127.0.0.1" });
    let answer = "";
    socket.setTimeout(500, () => socket.destroy());
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (d) => {
      answer += d.toString();
      if (answer.includes("\r\n")) socket.end();
    });
    socket.on("close", () => ok(answer.startsWith("+PONG")));
    socket.on("error", () => ok(false));
  });
}

export interface Redis {
  port: number;
  url: string;
  proc: Proc;
  dir: string;
  /**
   * Stops it (SIGTERM: the AOF is flushed), runs `whileDown`, and starts it again on the same port
   * and data.
   */
  restart(whileDown?: () => Promise<unknown>): Promise<void>;
  stop(): Promise<void>;
}

/** A redis-server with AOF on (appendfsync always), on a free port (a taken port is retried). */
export async function startRedis(dir: string): Promise<Redis> {
  const launch = async (port: number) => {
    const proc = start(`redis:${port}`, "redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "yes",
      "--appendfsync",
      "always",
      "--dir",
      dir,
    ]);
    await until(`redis-server on ${port}`, async () => {
      if (!proc.alive) throw new Error(`redis-server exited: ${proc.output}`);
      return redisPing(port);
    });
    return proc;
  };
  let lastError: unknown;
  for (let i = 0; i < 5; i++) {
    const port = await freePort();
    try {
      const redis: Redis = {
        port,
        url: `redis://127.0.0.1:${port}`,
        dir,
        proc: await launch(port),
        async restart(whileDown) {
          await redis.proc.stop("SIGTERM");
          await whileDown?.();
          redis.proc = await launch(port);
        },
        stop: () => redis.proc.stop("SIGKILL"),
      };
      return redis;
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}

export interface Gateway {
  port: number;
  http: string;
  ws: string;
  proc: Proc;
  env: Record<string, string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the node again on the same port with the same settings. */
  restart(): Promise<void>;
}

/** A roomcast node on 127.0.0.1:0 (the port read from its log line), ready on /readyz. */
export async function startGateway(env: Record<string, string> = {}): Promise<Gateway> {
  const base = {
    ROOMCAST_JWT_SECRET: SECRET,
    ROOMCAST_API_KEY: API_KEY,
    ROOMCAST_LOG_FORMAT: "text",
    ROOMCAST_LOG: "info",
    ...env,
  };
  const launch = async (listen: string) => {
    const proc = start(`roomcast ${env.ROOMCAST_NODE_ID ?? ""}`, BIN, [], { ...base, ROOMCAST_LISTEN: listen });
    const port = await until("the node's listening line", () => {
      if (!proc.alive) throw new Error(`roomcast exited: ${proc.output}`);
      const m = /addr=127\.0\.0\.1:(\d+)/.exec(proc.output);
      return m ? Number(m[1]) : undefined;
    });
    await until("/readyz", async () => {
      if (!proc.alive) throw new Error(`roomcast exited: ${proc.output}`);
      return fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
    });
    return { proc, port };
  };
  const first = await launch("127.0.0.1:0");
  const gw: Gateway = {
    port: first.port,
    http: `http://127.0.0.1:${first.port}`,
    ws: `ws://127.0.0.1:${first.port}/ws`,
    proc: first.proc,
    env: base,
    stop: (signal = "SIGKILL") => gw.proc.stop(signal),
    async restart() {
      await gw.proc.stop("SIGKILL");
      gw.proc = (await launch(`127.0.0.1:${gw.port}`)).proc;
    },
  };
  return gw;
}

/** A RESP2 reply: a status or bulk string, an integer, an array, or null. */
export type Resp = string | number | null | Resp[];

/** Sends one command over a raw RESP socket and resolves with its parsed reply (errors reject). */
export function redisCommand(port: number, ...args: string[]): Promise<Resp> {
  return new Promise((ok, fail) => {
    const socket = createConnection({ port, host: "127.0.0.1" });
    let buf = Buffer.alloc(0);
    socket.setTimeout(5000, () => socket.destroy(new Error(`redis ${args[0]} timed out`)));
    socket.on("connect", () => {
      const parts = args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`);
      socket.write(`*${args.length}\r\n${parts.join("")}`);
    });
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const parsed = parseResp(buf, 0);
      if (!parsed) return;
      socket.end();
      const [value] = parsed;
      if (value instanceof Error) fail(value);
      else ok(value);
    });
    socket.on("error", fail);
  });
}

/** Parses one reply at `at`: [value, next index], or undefined when more bytes are needed. */
function parseResp(buf: Buffer, at: number): [Resp | Error, number] | undefined {
  const eol = buf.indexOf("\r\n", at);
  if (eol < 0) return undefined;
  const line = buf.toString("utf8", at + 1, eol);
  const next = eol + 2;
  switch (String.fromCharCode(buf[at] ?? 0)) {
    case "+":
      return [line, next];
    case "-":
      return [new Error(line), next];
    case ":":
      return [Number(line), next];
    case "$": {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return undefined;
      return [buf.toString("utf8", next, next + n), next + n + 2];
    }
    case "*": {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items: Resp[] = [];
      let i = next;
      for (let k = 0; k < n; k++) {
        const item = parseResp(buf, i);
        if (!item) return undefined;
        if (item[0] instanceof Error) return item;
        items.push(item[0]);
        i = item[1];
      }
      return [items, i];
    }
    default:
      return [new Error(`unexpected RESP reply ${JSON.stringify(line)}`), next];
  }
}
