import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "binding",
    include: ["test/**/*.test.ts"]
  }
})
