import { defineConfig } from "vitest/config";

// Two projects: node (socket.io-client in Node against real gateway processes, Redis and the
// local nginx cluster) and browser (Debian's chromium through playwright-core, socket.io-client's
// browser build against the local cluster).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
