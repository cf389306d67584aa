import { defineConfig } from "vitest/config"

// The shell examples of docs/deployment.md, run against real processes: by scripts/test-docs.sh (in .ci/run), which
// starts a throwaway PostgreSQL and builds the service first.
export default defineConfig({
  test: {
    name: "service-docs",
    root: new URL(".", import.meta.url).pathname,
    include: ["test/**/*.docs.test.ts"],
    testTimeout: 270_000,
    hookTimeout: 60_000
  }
})
