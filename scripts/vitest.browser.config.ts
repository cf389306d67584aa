import * as path from "node:path"
import { defineConfig } from "vitest/config"

// The browser test, apart from `pnpm test`: it needs Chromium, which
// scripts/test-browser.sh installs, so it is named `*.ci.ts` and run from here.
export default defineConfig({
  test: {
    root: path.resolve(import.meta.dirname, ".."),
    include: ["packages/harness/test/Report.browser.ci.ts"],
    hookTimeout: 60_000,
    testTimeout: 60_000
  }
})
