// Real processes for the tests: roomcast nodes, redis-server and the local nginx cluster on free
// ports, started in their own process groups and killed with them (also when a test fails, and
// on exit). Readiness is polled with a bounded deadline, never slept for. Copied from
// clients/js/test/helpers/procs.ts (the packages do not import each other), plus the cluster.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const PKG_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const REPO = resolve(PKG_ROOT, "../..");
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

/**
 * A redis-server with AOF on (appendfsync always), on a free port (a taken port is retried);
 * `{aof: false}`: no persistence at all (a restart loses every key).
 */
export async function startRedis(dir: string, { aof = true } = {}): Promise<Redis> {
  const launch = async (port: number) => {
    const proc = start(`redis:${port}`, "redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      aof ? "yes" : "no",
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
  /** The node's id (ROOMCAST_NODE_ID). */
  id: string;
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
    id: env.ROOMCAST_NODE_ID ?? "",
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
