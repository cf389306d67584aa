import { defineConfig } from "vitest/config"

// The pack test, apart from `pnpm test`: it builds, packs and installs from the
// npm registry, which takes a minute, and is run by scripts/test-pack.sh.
export default defineConfig({
  test: {
    root: import.meta.dirname,
    include: ["pack.test.ts"],
    hookTimeout: 600_000,
    testTimeout: 120_000
  }
})
