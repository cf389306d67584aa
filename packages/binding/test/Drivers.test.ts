import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

const src = path.resolve(import.meta.dirname, "../src")
const drivers = ["@effect/sql-pg", "@electric-sql/pglite"]

/** The packages that `entry` loads, through its relative imports, type-only imports excluded (erased at build). */
const packagesLoadedBy = (entry: string): Set<string> => {
  const seen = new Set<string>()
  const packages = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    const text = fs.readFileSync(file, "utf8")
    for (const [, specifier] of text.matchAll(/^(?:import|export)(?! type)[^"]*?from "([^"]+)"/gm)) {
      if (specifier!.startsWith(".")) visit(path.resolve(path.dirname(file), specifier!.replace(/\.js$/, ".ts")))
      else {packages.add(
          specifier!.startsWith("@") ? specifier!.split("/").slice(0, 2).join("/") : specifier!.split("/")[0]!
        )}
    }
  }
  visit(path.join(src, entry))
  return packages
}

describe("each driver is an optional peer, loaded only by its own module", () => {
  it("the package's root and Database load no driver", () => {
    for (const entry of ["index.ts", "Database.ts"]) {
      expect([...packagesLoadedBy(entry)].filter((p) => drivers.includes(p)), entry).toEqual([])
    }
  })

  it("PgDatabase loads @effect/sql-pg, not PGlite", () => {
    const loaded = packagesLoadedBy("PgDatabase.ts")
    expect([...loaded].filter((p) => drivers.includes(p)).sort()).toEqual(["@effect/sql-pg"])
  })

  it("PgliteDatabase loads PGlite, not @effect/sql-pg", () => {
    const loaded = packagesLoadedBy("PgliteDatabase.ts")
    expect([...loaded].filter((p) => drivers.includes(p))).toEqual(["@electric-sql/pglite"])
  })
})
