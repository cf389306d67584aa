import { defineConfig } from "vitest/config"

// One vitest project per package: each package's vitest.config.ts is a `defineProject` that names it
// (`pnpm exec vitest run --project core`).
export default defineConfig({
  test: {
    projects: ["packages/*"]
  }
})
