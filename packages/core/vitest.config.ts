import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "core",
    include: ["test/**/*.test.ts"],
    // Each test file in a fresh worker (vitest's default, said out loud so that vitest 5 stops suggesting
    // `isolate: false`): no file may depend on what another left in a module or a global.
    isolate: true
  }
})
