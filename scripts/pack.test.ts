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
import { createRequire } from "node:module"
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

/** The version the workspace resolves for `name`, from `fromPackage`'s point of view. */
const workspaceVersion = (name: string, fromPackage: string) => {
  const require = createRequire(path.join(repo, fromPackage, "package.json"))
  return (JSON.parse(fs.readFileSync(require.resolve(`${name}/package.json`), "utf8")) as { version: string }).version
}

/** The first fenced `ts` block of a README: the example the README promises compiles. */
const example = (readme: string) => {
  const match = /```ts\n([\s\S]*?)```/.exec(readme)
  if (match === null) throw new Error("no ```ts block in the README")
  return match[1]!
}

let temp = ""
let app = ""
/** tsc's diagnostics in the fresh project (it emits `out/` even when there are some). */
let tscOutput = ""
const tarballs = {} as Record<Package, { file: string; entries: ReadonlyArray<string>; manifest: Manifest }>

interface Manifest {
  readonly name: string
  readonly exports: Record<string, unknown>
  readonly files?: ReadonlyArray<string>
  readonly engines?: Record<string, string>
  readonly dependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
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

beforeAll(async () => {
  temp = fs.mkdtempSync(path.join(os.tmpdir(), "lazydial-pack-"))
  app = path.join(temp, "app")
  fs.mkdirSync(app)

  await run("pnpm", ["build"], repo)
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
    fs.writeFileSync(
      path.join(app, `${name}.readme.ts`),
      example(await run("tar", ["xzOf", tgz, "package/README.md"], temp))
    )
  }
  fs.writeFileSync(path.join(app, "subpaths.ts"), subpaths)
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }))
  fs.writeFileSync(
    path.join(app, "tsconfig.json"),
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
  const peers = ["effect", "@effect/sql", "@effect/sql-pg", "@effect/platform", "@effect/experimental"]
    .map((name) => `${name}@${workspaceVersion(name, "packages/binding")}`)
  await run(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      tarballs.core.file,
      tarballs.binding.file,
      ...peers,
      `typescript@${workspaceVersion("typescript", ".")}`,
      "@types/node@20"
    ],
    app,
    480_000
  )
  try {
    tscOutput = await run(path.join(app, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], app)
  } catch (error) {
    tscOutput = String((error as { stdout?: string }).stdout ?? error)
  }
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

describe("a fresh project with the tarballs installed", () => {
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
