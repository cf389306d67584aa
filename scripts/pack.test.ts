/**
 * The packages as a user installs them: built, packed by pnpm (so
 * `publishConfig` and `workspace:^` are applied), and installed with npm into a
 * fresh project under the system temp directory, far from the workspace's
 * node_modules. effect and the @effect/* peers are that project's own
 * dependencies, at the versions the workspace is tested with.
 *
 * The program the user compiles is each package's README example, extracted
 * from the README in the tarball, so the README cannot drift from the API.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const repo = path.resolve(import.meta.dirname, "..")
const packages = ["core", "binding"] as const
type Package = typeof packages[number]

// Asynchronous, so that vitest's worker keeps answering its runner during the
// minute of build and install (a blocked worker fails with "Timeout calling onTaskUpdate").
const execFileAsync = promisify(execFile)
const run = async (command: string, args: ReadonlyArray<string>, cwd: string, timeoutMs = 300_000) =>
  (await execFileAsync(command, args, {
    cwd,
    encoding: "utf8",
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, NODE_OPTIONS: "" }
  })).stdout

/**
 * The version the workspace resolves for `name`, from `fromPackage`'s point of view: pnpm links each dependency into
 * the package's own node_modules (read directly, as PGlite's `exports` do not export its package.json).
 */
const workspaceVersion = (name: string, fromPackage: string) =>
  (JSON.parse(fs.readFileSync(path.join(repo, fromPackage, "node_modules", name, "package.json"), "utf8")) as {
    version: string
  }).version

/** The first fenced `ts` block of a README: the example the README promises compiles. */
const example = (readme: string) => {
  const match = /```ts\n([\s\S]*?)```/.exec(readme)
  if (match === null) throw new Error("no ```ts block in the README")
  return match[1]!
}

let temp = ""
let app = ""
/** A PostgreSQL user's project: pg and @effect/sql-pg, no PGlite. */
let pgApp = ""
/** tsc's diagnostics in the fresh project (it emits `out/` even when there are some). */
let tscOutput = ""
let pgTscOutput = ""
const tarballs = {} as Record<Package, { file: string; entries: ReadonlyArray<string>; manifest: Manifest }>

interface Manifest {
  readonly name: string
  readonly exports: Record<string, unknown>
  readonly files?: ReadonlyArray<string>
  readonly engines?: Record<string, string>
  readonly dependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
  readonly peerDependenciesMeta?: Record<string, { readonly optional?: boolean }>
}

const subpaths = `
import * as LazyDial from "@lazydial/core/LazyDial"
import * as Ids from "@lazydial/core/Ids"
import { layerTest } from "@lazydial/core/testing"
import * as ChatConnector from "@lazydial/binding/ChatConnector"
import * as BindingStore from "@lazydial/binding/BindingStore"
import { Layer } from "effect"

// Type-level use of every subpath, so a missing .d.ts is a compile error.
export const Test = ChatConnector.layer().pipe(
  Layer.provideMerge(LazyDial.layer({ delay: "5 seconds" })),
  Layer.provideMerge(BindingStore.layerMemory),
  Layer.provideMerge(layerTest)
)
export const chatId: Ids.ChatId = Ids.ChatId.make("00000000-0000-4000-8000-000000000001")
console.log("subpaths:", [LazyDial.layer, ChatConnector.layer, BindingStore.layerMemory, layerTest, Ids.ChatId].map((x) => typeof x).join(","))
`

const pgProgram = `
import { BindingStore, Database } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import { Layer } from "effect"

// Typechecked against @effect/sql-pg and @types/pg; not run against a server (there is none here).
export const Store = BindingStore.layerSql.pipe(
  Layer.provide(PgDatabase.layerPg("postgres://lazydial@127.0.0.1:5432/lazydial", { poolSize: 2 }))
)
export const options: PgDatabase.PgOptions = { poolSize: 2, connectTimeout: "1 second" }
console.log("pg:", [PgDatabase.layerPg, PgDatabase.layerPgConfig, Database.layerMigrated, Store].map((x) => typeof x).join(","))
`

/** The peers every user installs; each database driver is an optional peer that only its user installs. */
const peers = ["effect", "@effect/sql", "@effect/platform", "@effect/experimental"]
const pgliteDriver = ["@electric-sql/pglite"]
const pgDriver = ["@effect/sql-pg", "pg", "@types/pg"]

/** A fresh project in `dir` holding `files`, with the tarballs and `dependencies` installed by npm and tsc run on it. */
const project = async (dir: string, files: Record<string, string>, dependencies: ReadonlyArray<string>) => {
  fs.mkdirSync(dir)
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), text)
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }))
  fs.writeFileSync(
    path.join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        exactOptionalPropertyTypes: true,
        skipLibCheck: false,
        types: ["node"],
        outDir: "out"
      },
      include: ["*.ts"]
    })
  )
  const versions = [...peers, ...dependencies].map((name) => `${name}@${workspaceVersion(name, "packages/binding")}`)
  await run(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      tarballs.core.file,
      tarballs.binding.file,
      ...versions,
      `typescript@${workspaceVersion("typescript", ".")}`,
      "@types/node@20"
    ],
    dir,
    480_000
  )
  try {
    return await run(path.join(dir, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], dir)
  } catch (error) {
    return String((error as { stdout?: string }).stdout ?? error)
  }
}

beforeAll(async () => {
  temp = fs.mkdtempSync(path.join(os.tmpdir(), "lazydial-pack-"))
  app = path.join(temp, "app")
  pgApp = path.join(temp, "pg-app")

  await run("pnpm", ["build"], repo)
  const readmes: Record<string, string> = {}
  for (const name of packages) {
    const dir = path.join(repo, "packages", name)
    const before = new Set(fs.readdirSync(temp))
    await run("pnpm", ["pack", "--pack-destination", temp], dir)
    const file = fs.readdirSync(temp).find((f) => f.endsWith(".tgz") && !before.has(f))
    if (file === undefined) throw new Error(`pnpm pack wrote no tarball for ${name}`)
    const tgz = path.join(temp, file)
    const entries = (await run("tar", ["tzf", tgz], temp)).split("\n").filter((line) => line !== "")
    const manifest = JSON.parse(await run("tar", ["xzOf", tgz, "package/package.json"], temp)) as Manifest
    tarballs[name] = { file: tgz, entries, manifest }
    readmes[`${name}.readme.ts`] = example(await run("tar", ["xzOf", tgz, "package/README.md"], temp))
  }
  // The README examples run on PGlite, so this is the PGlite user: no pg, no @effect/sql-pg.
  tscOutput = await project(app, { ...readmes, "subpaths.ts": subpaths }, pgliteDriver)
  pgTscOutput = await project(pgApp, { "pg.ts": pgProgram }, pgDriver)
})

afterAll(() => {
  if (temp !== "") fs.rmSync(temp, { recursive: true, force: true })
})

describe.each(packages)("the @lazydial/%s tarball", (name) => {
  it("holds README, LICENSE, package.json and the compiled modules with their types", () => {
    const { entries } = tarballs[name]
    for (const file of ["README.md", "LICENSE", "package.json", "dist/index.js", "dist/index.d.ts"]) {
      expect(entries, file).toContain(`package/${file}`)
    }
    const modules = entries.filter((e) => /^package\/dist\/[A-Z][A-Za-z]*\.js$/.test(e))
    expect(modules.length).toBeGreaterThan(2)
    for (const module of modules) expect(entries).toContain(module.replace(/\.js$/, ".d.ts"))
  })

  it("holds no tests, benches, examples, scripts, tsconfigs or build info", () => {
    const unwanted = tarballs[name].entries.filter((e) =>
      /^package\/(test|bench|examples|scripts|\.bench-build|\.tsbuildinfo)\//.test(e) ||
      /tsconfig[^/]*\.json$|\.tsbuildinfo$|vitest\.config/.test(e)
    )
    expect(unwanted).toEqual([])
  })

  it("points its exports at dist, declares engines and takes effect as a peer", () => {
    const { manifest } = tarballs[name]
    expect(JSON.stringify(manifest.exports)).not.toContain("/src/")
    expect(manifest.exports["./internal/*"]).toBeNull()
    expect(manifest.engines?.node).toBeDefined()
    expect(manifest.peerDependencies?.effect).toBeDefined()
    expect(manifest.dependencies?.effect).toBeUndefined()
    expect(JSON.stringify(manifest)).not.toContain("workspace:")
  })
})

it("@lazydial/binding takes each database driver as an optional peer, not a dependency", () => {
  const { manifest } = tarballs.binding
  for (const driver of [...pgliteDriver, ...pgDriver]) {
    expect(manifest.dependencies?.[driver], driver).toBeUndefined()
    expect(manifest.peerDependencies?.[driver], driver).toBeDefined()
    expect(manifest.peerDependenciesMeta?.[driver]?.optional, driver).toBe(true)
  }
})

describe("a PGlite user's fresh project with the tarballs installed (PGlite, no pg)", () => {
  it("has one copy of effect, its own", async () => {
    const copies =
      (await run("find", ["node_modules", "-path", "*/effect/package.json", "-not", "-path", "*/src/*"], app))
        .split("\n").filter((line) => line.endsWith("/effect/package.json"))
    expect(copies).toEqual(["node_modules/effect/package.json"])
  })

  it("typechecks the README examples and every subpath with skipLibCheck: false", () => {
    expect(tscOutput).toBe("")
  })

  it("runs the core README example", async () => {
    expect(await run("node", ["out/core.readme.js"], app)).toBe("core: fast false\n")
  })

  it("holds neither pg nor @effect/sql-pg: a PGlite user does not install them", () => {
    for (const driver of pgDriver) expect(fs.existsSync(path.join(app, "node_modules", driver)), driver).toBe(false)
  })

  it("runs the binding README example on PGlite", async () => {
    expect(await run("node", ["out/binding.readme.js"], app, 120_000)).toBe("binding: true true 1\n")
  })

  it("imports the per-module subpaths at run time", async () => {
    expect(await run("node", ["out/subpaths.js"], app)).toBe("subpaths: function,function,object,object,function\n")
  })

  it("refuses the internal modules (ERR_PACKAGE_PATH_NOT_EXPORTED)", async () => {
    const probe = (specifier: string) =>
      run("node", [
        "--input-type=module",
        "-e",
        `import(${JSON.stringify(specifier)}).then(() => console.log("loaded"), (e) => console.log(e.code))`
      ], app)
    expect(await probe("@lazydial/core/internal/lazyDial")).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED\n")
    expect(await probe("@lazydial/binding/internal/connector")).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED\n")
  })
})

describe("a PostgreSQL user's fresh project (pg and @effect/sql-pg, no PGlite)", () => {
  it("holds no PGlite", () => {
    expect(fs.existsSync(path.join(pgApp, "node_modules/@electric-sql/pglite"))).toBe(false)
    expect(fs.existsSync(path.join(pgApp, "node_modules/pg"))).toBe(true)
  })

  it("typechecks @lazydial/binding and @lazydial/binding/PgDatabase with skipLibCheck: false", () => {
    expect(pgTscOutput).toBe("")
  })

  it("imports @lazydial/binding and @lazydial/binding/PgDatabase at run time", async () => {
    expect(await run("node", ["out/pg.js"], pgApp)).toBe("pg: function,function,object,object\n")
  })
})
