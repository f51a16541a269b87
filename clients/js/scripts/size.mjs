// Measures the client entry point as an app's bundler would ship it: dist/esm/index.js bundled and
// minified by esbuild, then gzipped (zlib's default level). Prints the numbers; exits 1 over the limit.
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const LIMIT = 6 * 1024;
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = await build({
  entryPoints: [join(root, "dist", "esm", "index.js")],
  bundle: true,
  minify: true,
  format: "esm",
  platform: "neutral",
  write: false,
  legalComments: "none",
});
const code = out.outputFiles[0].contents;
const gz = gzipSync(code).length;
console.log(`size: client entry point ${code.length} bytes minified, ${gz} bytes minified+gzipped (limit ${LIMIT})`);
if (gz > LIMIT) {
  console.error(`size: over the limit by ${gz - LIMIT} bytes`);
  process.exit(1);
}
