// The client entry point as an app's bundler ships it: dist/esm/index.js bundled and minified by
// esbuild, then gzipped (zlib's default level). At most 6 KB, and no DOM or Node API in it.
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { expect, it } from "vitest";
import { JS_ROOT } from "../helpers/procs.js";

const LIMIT = 6 * 1024;

it("keeps the client entry point within 6 KB minified and gzipped, free of DOM and Node APIs", async () => {
  const out = await build({
    entryPoints: [join(JS_ROOT, "dist", "esm", "index.js")],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "neutral",
    write: false,
    legalComments: "none",
  });
  const code = out.outputFiles[0]?.text ?? "";
  const gzipped = gzipSync(code).length;
  console.log(
    `size: client entry point ${code.length} bytes minified, ${gzipped} bytes minified+gzipped (limit ${LIMIT})`,
  );
  expect(gzipped).toBeLessThanOrEqual(LIMIT);
  const foreign = code.match(/\b(window|document|localStorage|navigator|require|process|Buffer)\b|["'`]node:/g);
  expect(foreign).toBeNull();
});
