import { defineConfig } from "vitest/config"

// vitest 3.2 deprecates vitest.workspace.ts; `test.projects` is its current form.
export default defineConfig({
  test: {
    projects: ["packages/*"]
  }
})
