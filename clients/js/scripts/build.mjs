// Builds the package: ESM and CommonJS bundles of both entry points with esbuild, declarations with
// tsc (copied beside the CommonJS files, whose folder says "type": "commonjs"). Then the demo page's
// script (demo/public/app.js), which imports "roomcast-client" as an app would.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });

const entries = [
  { name: "index", platform: "neutral" },
  { name: "server", platform: "node" },
];
for (const { name, platform } of entries) {
  for (const format of ["esm", "cjs"]) {
    await build({
      entryPoints: [join(root, "src", `${name}.ts`)],
      outfile: join(dist, format, `${name}.js`),
      bundle: true,
      format,
      platform,
      target: "es2019",
      external: ["node:*"],
      legalComments: "none",
      logLevel: "warning",
    });
  }
}

execFileSync(join(root, "node_modules", ".bin", "tsc"), ["-p", join(root, "tsconfig.build.json")], {
  stdio: "inherit",
});
for (const file of readdirSync(join(dist, "esm"))) {
  if (file.endsWith(".d.ts")) cpSync(join(dist, "esm", file), join(dist, "cjs", file));
}
mkdirSync(join(dist, "cjs"), { recursive: true });
writeFileSync(join(dist, "cjs", "package.json"), '{ "type": "commonjs" }\n');
await build({
  entryPoints: [join(root, "demo", "src", "main.ts")],
  outfile: join(root, "demo", "public", "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  alias: { "roomcast-client": join(root, "src", "index.ts") },
  logLevel: "warning",
});
console.log("build: dist/esm and dist/cjs (index, server) with declarations; demo/public/app.js");
