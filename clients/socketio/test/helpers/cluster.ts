// The local cluster of deploy/local/cluster.sh (Redis, nodes a, b, c, nginx, Prometheus) on free
// ports, in a temporary RUN_DIR; stopped by stop() (call it in afterAll: also after a failure).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { API_KEY, BIN, freePort, REPO, SECRET, tempDir } from "./procs.js";

const SCRIPT = join(REPO, "deploy", "local", "cluster.sh");

export interface ClusterNode {
  id: string;
  http: string;
  port: number;
}

export interface Cluster {
  /** nginx: http://127.0.0.1:LB_PORT (clients' /socket.io/ round-robin, /api/ least_conn). */
  lb: string;
  nodes: ClusterNode[];
  runDir: string;
  /** Signals node `id` (its pid from RUN_DIR/node-<id>.pid): SIGKILL unless told. */
  kill(id: string, signal?: NodeJS.Signals): void;
  /** Whether node `id`'s process is still there. */
  alive(id: string): boolean;
  /** nginx's access log lines for `path` as [method, status, upstream]. */
  upstreams(path: string): { method: string; status: string; upstream: string }[];
  stop(): void;
}

export async function startCluster(): Promise<Cluster> {
  const dir = tempDir("sio-cluster");
  const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const nodePorts = ports.slice(1, 4) as number[];
  const env = {
    ...process.env,
    RUN_DIR: dir.path,
    ROOMCAST_BIN: BIN,
    LB_PORT: String(ports[0]),
    NODE_PORTS: nodePorts.join(" "),
    REDIS_PORT: String(ports[4]),
    PROMETHEUS_PORT: String(ports[5]),
    ROOMCAST_JWT_SECRET: SECRET,
    ROOMCAST_API_KEY: API_KEY,
  };
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    execFileSync(SCRIPT, ["stop"], { env, stdio: ["ignore", "ignore", "inherit"] });
    dir.remove();
  };
  try {
    execFileSync(SCRIPT, ["start"], { env, stdio: ["ignore", "ignore", "inherit"] });
  } catch (e) {
    stop();
    throw e;
  }
  const pidOf = (id: string) => Number(readFileSync(join(dir.path, `node-${id}.pid`), "utf8").trim());
  return {
    lb: `http://127.0.0.1:${ports[0]}`,
    nodes: ["a", "b", "c"].map((id, i) => ({
      id,
      port: nodePorts[i] as number,
      http: `http://127.0.0.1:${nodePorts[i]}`,
    })),
    runDir: dir.path,
    kill(id, signal = "SIGKILL") {
      process.kill(pidOf(id), signal);
    },
    alive(id) {
      try {
        process.kill(pidOf(id), 0);
        return true;
      } catch {
        return false;
      }
    },
    upstreams(path) {
      const log = readFileSync(join(dir.path, "nginx", "access.log"), "utf8");
      return log
        .split("\n")
        .map((l) => /"(\w+) ([^"]+)" (\d+) (\S+)/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null && m[2] === path)
        .map((m) => ({ method: m[1] as string, status: m[3] as string, upstream: m[4] as string }));
    },
    stop,
  };
}
