import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "service",
    include: ["test/**/*.test.ts"],
    // Tests of real processes against a real PostgreSQL run from
    // scripts/test-replicas.sh and scripts/test-docs.sh (in .ci/run), not here.
    exclude: ["test/**/*.ci.test.ts", "test/**/*.docs.test.ts", "**/node_modules/**"],
    // Every file starts real agents, sockets and an embedded database: run
    // them one at a time, so that they do not starve each other of CPU and
    // turn timing-based outcomes (a slow localhost dial) into flakes.
    fileParallelism: false,
    // Each test file in a fresh worker (vitest's default, said out loud so that vitest 5 stops suggesting
    // `isolate: false`): no file may depend on what another left in a module or a global.
    isolate: true
  }
})
