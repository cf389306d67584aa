import { defineConfig } from "vitest/config"

// The process tests: run by scripts/test-replicas.sh against a real
// PostgreSQL, one file at a time (they start servers and signal them): the
// service's, and the harness's `cluster`, which starts a fleet and replicas of
// the service as well.
export default defineConfig({
  test: {
    name: "service-ci",
    root: new URL(".", import.meta.url).pathname,
    include: ["test/**/*.ci.test.ts", "../harness/test/**/*.ci.test.ts"],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000
  }
})
