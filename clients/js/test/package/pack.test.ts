// `npm pack`, then a scratch project installs the tarball and uses both entry points as ESM and as
// CommonJS, and type-checks against its declarations: the client entry with no DOM and no Node
// types (as in React Native), the server entry with Node's.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { JS_ROOT, tempDir } from "../helpers/procs.js";

const dir = tempDir("pack");
afterAll(() => dir.remove());

const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

const USE = `
const ws = class { readyState = 0; onopen = null; onmessage = null; onclose = null; onerror = null; send() {} close() {} };
const client = new RoomcastClient({ url: "ws://x/ws", getToken: () => "t", WebSocket: ws });
const token = signToken({ sub: "u1", ttl: 60 }, "s");
const api = new RoomcastApi({ url: "http://x", apiKey: "k" });
console.log(JSON.stringify({
  state: client.state.status,
  delay: backoffDelay(3, {}, () => 0.5),
  error: new RoomcastError("forbidden", "m").code,
  token: token.split(".").length,
  api: typeof api.publish,
}));`;

const TS_USE = `
const state: ConnectionState = new RoomcastClient({ url: "ws://x/ws", getToken: async () => "t" }).state;
const options: ClientOptions = { url: () => "ws://x/ws", getToken: () => "t", storage: { getItem: () => null, setItem: () => {} } };
const handler = (e: RoomEvent): string => e.id + e.offset + e.epoch;
// @ts-expect-error url is required
const bad: ClientOptions = { getToken: () => "t" };
const c = new RoomcastClient({ url: "ws://x/ws", getToken: () => "t", receiptInterval: 500 });
const who: Promise<Presence> = c.presence("dialog:1");
const count: Promise<number> = c.presenceStats("dialog:1").then((s: PresenceStats) => s.users + s.connections);
const off: () => void = c.on("join", (j: PresenceChange) => j.room + j.user);
const sub: SubscribeOptions = { presence: true, receipts: true };
// @ts-expect-error presence is a boolean
const wrong: SubscribeOptions = { presence: "yes" };
export { state, options, handler, bad, who, count, off, sub, wrong };
`;

it("packs a package that a scratch project installs and uses as ESM and CJS, with types", () => {
  const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", dir.path], JS_ROOT)) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  const files = packed[0]?.files.map((f) => f.path) ?? [];
  for (const f of [
    "package.json",
    "README.md",
    "dist/esm/index.js",
    "dist/esm/server.js",
    "dist/cjs/index.js",
    "dist/cjs/server.js",
    "dist/cjs/package.json",
    "dist/esm/index.d.ts",
    "dist/cjs/index.d.ts",
    "dist/cjs/server.d.ts",
  ]) {
    expect(files).toContain(f);
  }
  expect(files.filter((f) => !f.startsWith("dist/") && f !== "package.json" && f !== "README.md")).toEqual([]);

  const app = join(dir.path, "app");
  run("mkdir", ["-p", app], dir.path);
  writeFileSync(join(app, "package.json"), '{ "name": "scratch", "private": true }\n');
  run("npm", ["install", "--offline", "--no-audit", "--no-fund", join(dir.path, String(packed[0]?.filename))], app);

  writeFileSync(
    join(app, "esm.mjs"),
    `import { RoomcastClient, RoomcastError, backoffDelay } from "roomcast-client";\nimport { RoomcastApi, signToken } from "roomcast-client/server";\n${USE}`,
  );
  writeFileSync(
    join(app, "cjs.cjs"),
    `const { RoomcastClient, RoomcastError, backoffDelay } = require("roomcast-client");\nconst { RoomcastApi, signToken } = require("roomcast-client/server");\n${USE}`,
  );
  const expected = { state: "disconnected", delay: 2000, error: "forbidden", token: 3, api: "function" };
  expect(JSON.parse(run("node", ["esm.mjs"], app))).toEqual(expected);
  expect(JSON.parse(run("node", ["cjs.cjs"], app))).toEqual(expected);
  // The CommonJS build really is CommonJS (require of the file itself, no ESM loader involved).
  expect(run("node", ["-e", 'console.log(typeof require("roomcast-client").RoomcastClient)'], app).trim()).toBe(
    "function",
  );

  const imports =
    "ClientOptions, ConnectionState, Presence, PresenceChange, PresenceStats, RoomEvent, SubscribeOptions, RoomcastClient";
  writeFileSync(
    join(app, "client.mts"),
    `import { type ${imports.replace(/, /g, ", type ").replace("type RoomcastClient", "RoomcastClient")} } from "roomcast-client";\n${TS_USE}`,
  );
  writeFileSync(
    join(app, "client.cts"),
    `import { type ${imports.replace(/, /g, ", type ").replace("type RoomcastClient", "RoomcastClient")} } from "roomcast-client";\n${TS_USE}`,
  );
  writeFileSync(
    join(app, "server.mts"),
    'import { RoomcastApi, type Published } from "roomcast-client/server";\nexport const p: Promise<Published> = new RoomcastApi({ url: "http://x", apiKey: "k" }).publish({ room: "dialog:1", event: "e" });\n',
  );
  writeFileSync(
    join(app, "server.cts"),
    'import { signToken } from "roomcast-client/server";\nexport const t: string = signToken({ sub: "u1" }, "s");\n',
  );
  const tsc = join(JS_ROOT, "node_modules", "typescript", "bin", "tsc");
  const base = {
    strict: true,
    noEmit: true,
    module: "node16",
    moduleResolution: "node16",
    target: "es2022",
    skipLibCheck: false,
  };
  writeFileSync(
    join(app, "tsconfig.client.json"),
    JSON.stringify({ compilerOptions: { ...base, lib: ["es2022"], types: [] }, files: ["client.mts", "client.cts"] }),
  );
  writeFileSync(
    join(app, "tsconfig.server.json"),
    JSON.stringify({
      compilerOptions: {
        ...base,
        lib: ["es2022"],
        types: ["node"],
        typeRoots: [join(JS_ROOT, "node_modules", "@types")],
      },
      files: ["server.mts", "server.cts"],
    }),
  );
  run("node", [tsc, "-p", "tsconfig.client.json"], app);
  run("node", [tsc, "-p", "tsconfig.server.json"], app);
});
