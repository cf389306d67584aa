import { defineConfig } from "vitest/config"

// The pack test, apart from `pnpm test`: it builds, packs, and installs from the npm registry (about a minute), and is
// run by scripts/test-pack.sh, which bounds the whole run.
export default defineConfig({
  test: {
    root: import.meta.dirname,
    include: ["pack.test.ts"],
    hookTimeout: 420_000,
    testTimeout: 150_000
  }
})
