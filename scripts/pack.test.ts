/**
 * The packages as a user installs them: built, packed by pnpm (so `publishConfig` and `workspace:^` are applied), and
 * installed with npm into fresh projects under the system temp directory, far from the workspace's node_modules.
 *
 * Each fresh project is one `npm install` line of a package's README, run as written with only the `@lazydial/*`
 * names replaced by the tarballs. Nothing is pinned: npm installs whatever the registry serves today, as it does for a
 * new user, so a new major on the registry breaks this test before it breaks the users. The programs compiled and run
 * there are the README's own `ts` blocks, read from the README in the tarball, and one file that imports every public
 * module the project can load.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import { builtinModules } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const repo = path.resolve(import.meta.dirname, "..")

interface Manifest {
  readonly name: string
  readonly version: string
  readonly private?: boolean
  readonly exports?: Record<string, unknown>
  readonly engines?: Record<string, string>
  readonly dependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
  readonly peerDependenciesMeta?: Record<string, { readonly optional?: boolean }>
}

const readJson = <A>(file: string) => JSON.parse(fs.readFileSync(file, "utf8")) as A
const rootManifest = readJson<Manifest>(path.join(repo, "package.json"))
const workspaceManifest = (dir: string) => readJson<Manifest>(path.join(repo, "packages", dir, "package.json"))

/** The published packages: every workspace package that is not private. */
const packages = fs.readdirSync(path.join(repo, "packages")).sort().filter((dir) =>
  workspaceManifest(dir).private !== true
)

// ---------------------------------------------------------------------------------------------------------------
// A README: its install lines and its examples
// ---------------------------------------------------------------------------------------------------------------

interface InstallLine {
  /** The comment line above it in its block, up to a colon (`# PGlite: in memory...` → `PGlite`), or its position. */
  readonly label: string
  /** What follows `npm install`, split on spaces. */
  readonly args: ReadonlyArray<string>
}

const fenced = (readme: string, languages: ReadonlyArray<string>) =>
  [...readme.matchAll(/^```([a-z]*)\n([\s\S]*?)^```/gm)]
    .filter((match) => languages.includes(match[1]!))
    .map((match) => match[2]!)

/** Every `npm install ...` line of the README's shell blocks. */
const installLines = (readme: string): Array<InstallLine> => {
  const lines: Array<InstallLine> = []
  for (const block of fenced(readme, ["sh", "bash", "shell", "console"])) {
    let comment: string | undefined
    for (const raw of block.split("\n")) {
      const line = raw.trim()
      if (line.startsWith("#")) {
        comment = line.replace(/^#\s*/, "").split(":")[0]!.trim()
        continue
      }
      const install = /^(?:\$\s+)?npm\s+(?:install|i|add)\s+(.+)$/.exec(line)
      if (install !== null) {
        const args = install[1]!.replace(/\s#.*$/, "").trim().split(/\s+/)
        lines.push({ label: comment ?? `install line ${lines.length + 1}`, args })
      }
      comment = undefined
    }
  }
  return lines
}

/** The package names a line installs (`effect@^4` → `effect`), flags left out. */
const namesOf = (line: InstallLine) =>
  line.args.filter((arg) => !arg.startsWith("-")).map((arg) => arg.replace(/(.)@.*$/, "$1"))

/** Every `ts` block of the README: each is a whole program the README promises compiles and runs. */
const examples = (readme: string) => fenced(readme, ["ts", "typescript"])
const exampleFile = (index: number) => `readme${index + 1}.ts`

// ---------------------------------------------------------------------------------------------------------------
// Modules and what they import
// ---------------------------------------------------------------------------------------------------------------

/** The package a bare specifier names (`@effect/sql-pg/PgClient` → `@effect/sql-pg`). */
const packageOf = (specifier: string) => specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/")
const isBuiltin = (specifier: string) => specifier.startsWith("node:") || builtinModules.includes(packageOf(specifier))

/** The specifiers a JavaScript or TypeScript file imports or re-exports (static, and dynamic with a literal). */
const importsOf = (source: string) =>
  [
    ...source.matchAll(/^\s*(?:import|export)\s(?:type\s)?[^"'`;]*?\bfrom\s*["']([^"']+)["']/gm),
    ...source.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
    ...source.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)
  ].map((match) => match[1]!)

/** The packages a file needs at run time, following its relative imports through its own package. */
const packagesNeeded = (file: string, seen = new Set<string>()): Set<string> => {
  const needed = new Set<string>()
  if (seen.has(file)) return needed
  seen.add(file)
  for (const specifier of importsOf(fs.readFileSync(file, "utf8"))) {
    if (specifier.startsWith(".")) {
      for (const name of packagesNeeded(path.resolve(path.dirname(file), specifier), seen)) needed.add(name)
    } else if (!isBuiltin(specifier)) {
      needed.add(specifier)
    }
  }
  return needed
}

/** The file an `exports` value points at for a plain `import` (`{ types, default }` → `default`). */
const exportTarget = (value: unknown): string | undefined =>
  typeof value === "string"
    ? value
    : typeof value === "object" && value !== null
    ? exportTarget((value as Record<string, unknown>).default)
    : undefined

/**
 * The public modules a manifest's `exports` give for the files a tarball holds, as subpath and file: `.`,
 * `./testing`, and each `./*` match (`./Ids` → `./dist/Ids.js`), without the refused ones (`./internal/*: null`).
 */
const publicModules = (manifest: Manifest, entries: ReadonlyArray<string>) => {
  const exports = manifest.exports ?? {}
  const refused = Object.keys(exports).filter((key) => exports[key] === null)
  const isRefused = (subpath: string) =>
    refused.some((key) => key.endsWith("*") ? subpath.startsWith(key.slice(0, -1)) : key === subpath)
  const modules = new Map<string, string>()
  for (const [key, value] of Object.entries(exports)) {
    const file = exportTarget(value)
    if (file === undefined || !file.endsWith(".js")) continue
    if (!key.includes("*")) {
      modules.set(key, file)
      continue
    }
    const [before, after] = file.split("*") as [string, string]
    for (const entry of entries) {
      const relative = `./${entry.replace(/^package\//, "")}`
      if (!relative.startsWith(before) || !relative.endsWith(after)) continue
      const star = relative.slice(before.length, relative.length - after.length)
      const subpath = key.replace("*", star)
      // `./index` is the root again, under a second name
      if (!star.includes("/") && star !== "index" && !isRefused(subpath) && !modules.has(subpath)) {
        modules.set(subpath, relative)
      }
    }
  }
  return [...modules].sort(([a], [b]) => a.localeCompare(b))
}

const specifierOf = (name: string, subpath: string) => subpath === "." ? name : `${name}/${subpath.slice(2)}`

// ---------------------------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------------------------

interface Run {
  readonly ok: boolean
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to its end (asynchronously, so that vitest's worker keeps answering its runner meanwhile). */
const run = (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  options: { readonly timeoutMs?: number; readonly env?: NodeJS.ProcessEnv } = {}
) =>
  new Promise<Run>((resolve) => {
    execFile(command, args, {
      cwd,
      encoding: "utf8",
      timeout: options.timeoutMs ?? 300_000,
      maxBuffer: 64 * 1024 * 1024,
      env: options.env ?? process.env
    }, (error, stdout, stderr) =>
      resolve({ ok: error === null, stdout, stderr: error !== null && stderr === "" ? String(error) : stderr }))
  })

const must = async (result: Promise<Run>, what: string) => {
  const { ok, stderr, stdout } = await result
  if (!ok) throw new Error(`${what} failed:\n${stdout}\n${stderr}`)
  return stdout
}

/**
 * A user's shell: the Node that runs this test (the workspace's own, an LTS) first on PATH, then the machine's PATH
 * without any node_modules/.bin, and none of pnpm's settings. NODE_PATH goes too: the workspace's `node` shim points
 * it at the workspace's store, where `require` would find packages the user never installed.
 */
const userEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  const whereNpmFetches =
    /^npm_config_(registry|@[^:]+:registry|https?_proxy|proxy|noproxy|cafile|ca|strict_ssl|cache)$/i
  for (const [key, value] of Object.entries(process.env)) {
    const packageManager = /^p?npm_/i.test(key) && !whereNpmFetches.test(key)
    if (packageManager || key === "NODE_PATH" || key === "NODE_OPTIONS" || key.startsWith("VITEST")) continue
    env[key] = value
  }
  const machinePath = (process.env.PATH ?? "").split(path.delimiter)
    .filter((dir) => dir !== "" && !dir.split(path.sep).includes("node_modules"))
  env.PATH = [path.dirname(process.execPath), ...machinePath].join(path.delimiter)
  return env
}

const npmInstall = (args: ReadonlyArray<string>, cwd: string) =>
  run("npm", ["install", "--no-audit", "--no-fund", ...args], cwd, { timeoutMs: 300_000, env: userEnv() })

// ---------------------------------------------------------------------------------------------------------------
// The tarballs and the fresh projects
// ---------------------------------------------------------------------------------------------------------------

interface Tarball {
  readonly file: string
  readonly entries: ReadonlyArray<string>
  readonly manifest: Manifest
  readonly readme: string
}

interface Project {
  readonly id: string
  /** The package whose README holds the line. */
  readonly dir: string
  readonly line: InstallLine
  app: string
  install: Run
  /** What went wrong after the install, for the tests to report. */
  errors: Array<string>
  /** The `@lazydial/*` packages the line installs. */
  installed: ReadonlyArray<string>
  /** The public modules that load here, by specifier; the others need an optional peer the line left out. */
  modules: ReadonlyArray<string>
  /** Imports of the packages' modules that are neither installed here nor an optional peer: each a packaging bug. */
  undeclared: ReadonlyArray<string>
  /** The README examples (files in `app`) whose imports all load here. */
  examples: ReadonlyArray<string>
  tsc: Record<string, Run>
}

let temp = ""
const tarballs: Record<string, Tarball> = {}

// The READMEs are read from the workspace when vitest collects the tests (the list of tests depends on them); the
// tarball's own README must be the same file, which a test checks.
const readmes = Object.fromEntries(
  packages.map((dir) => [dir, fs.readFileSync(path.join(repo, "packages", dir, "README.md"), "utf8")])
)

/**
 * The install lines of a README as projects. A README with several lines (one per database) gets one more: all of
 * them together, the user of a module that needs every driver (binding's `DatabaseConfig`), which no single line
 * installs.
 */
const projectLines = (readme: string): Array<InstallLine> => {
  const lines = installLines(readme)
  if (lines.length < 2) return lines
  const together = [...new Set(lines.flatMap((line) => line.args))]
  return [...lines, { label: "all its install lines together", args: together }]
}

const projects: Array<Project> = packages.flatMap((dir) =>
  projectLines(readmes[dir]!).map((line, index) => ({
    id: `${dir}-${index + 1}`,
    dir,
    line,
    app: "",
    install: { ok: false, stdout: "", stderr: "not run" },
    errors: [],
    installed: [],
    modules: [],
    undeclared: [],
    examples: [],
    tsc: {}
  }))
)

/**
 * This test's own tools, TypeScript and @types/node, live in a project of their own, so that the README's line is the
 * only `npm install` a user's project sees (a second one resolves the tree again, and may fail where the first only
 * warned). Two TypeScripts: whatever the registry calls latest today, what a new user gets; and the workspace's, what
 * the packages are built with. Both emit into `out/`; the workspace's, last, is what runs.
 */
let tools = ""
const compilers = [
  { dir: "typescript-latest", label: "the registry's latest TypeScript" },
  { dir: "typescript", label: "the workspace's TypeScript" }
] as const

const tsconfig = () => ({
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    moduleDetection: "force",
    strict: true,
    exactOptionalPropertyTypes: true,
    skipLibCheck: false,
    typeRoots: [path.join(tools, "node_modules", "@types")],
    types: ["node"],
    outDir: "out"
  },
  include: ["*.ts"]
})

/** Whether `specifier` loads in the project: a builtin, or a package in its node_modules. */
const installedIn = (app: string, specifier: string) =>
  isBuiltin(specifier) || fs.existsSync(path.join(app, "node_modules", packageOf(specifier), "package.json"))

/** The README's line, as written, with the `@lazydial/*` names replaced by the tarballs. */
const install = async (project: Project) => {
  fs.mkdirSync(project.app)
  fs.writeFileSync(
    path.join(project.app, "package.json"),
    JSON.stringify({ name: "app", private: true, type: "module" })
  )
  const args = project.line.args.map((arg) => {
    const name = /^(@lazydial\/[^@]+)(?:@.*)?$/.exec(arg)?.[1]
    if (name === undefined) return arg
    const tarball = tarballs[name]
    if (tarball === undefined) {
      throw new Error(`the install line names ${name}, which is not a package of this repository`)
    }
    return tarball.file
  })
  project.installed = namesOf(project.line).filter((name) => tarballs[name] !== undefined)
  project.install = await npmInstall(args, project.app)
}

/** Which public modules and README examples load in the project; writes them, with a tsconfig, into it. */
const prepare = (project: Project) => {
  const { app } = project
  const modules: Array<string> = []
  const undeclared: Array<string> = []
  for (const name of project.installed) {
    const { entries, manifest } = tarballs[name]!
    const optional = Object.entries(manifest.peerDependenciesMeta ?? {})
      .filter(([, meta]) => meta.optional === true).map(([peer]) => peer)
    for (const [subpath, file] of publicModules(manifest, entries)) {
      const specifier = specifierOf(name, subpath)
      const missing = [...packagesNeeded(path.join(app, "node_modules", name, file))]
        .filter((needed) => !installedIn(app, needed))
      for (const needed of missing) {
        if (!optional.includes(packageOf(needed))) undeclared.push(`${specifier} imports ${needed}`)
      }
      if (missing.length === 0) modules.push(specifier)
    }
  }
  project.modules = modules
  project.undeclared = undeclared

  const own: Array<string> = []
  examples(tarballs[workspaceManifest(project.dir).name]!.readme).forEach((source, index) => {
    const loads = importsOf(source).every((specifier) =>
      project.installed.includes(packageOf(specifier)) ? modules.includes(specifier) : installedIn(app, specifier)
    )
    if (!loads) return
    fs.writeFileSync(path.join(app, exampleFile(index)), source)
    own.push(exampleFile(index))
  })
  project.examples = own

  // Every module that loads here, in one file: a missing or broken .d.ts is a compile error, and at run time each
  // must have exports.
  fs.writeFileSync(
    path.join(app, "modules.ts"),
    [
      ...modules.map((specifier, index) => `import * as m${index} from ${JSON.stringify(specifier)}`),
      `const modules: Record<string, object> = {${
        modules.map((specifier, index) => `${JSON.stringify(specifier)}: m${index}`).join(", ")
      }}`,
      "console.log(JSON.stringify(Object.entries(modules).map(([name, module]) => [name, Object.keys(module).length])))",
      ""
    ].join("\n")
  )
  fs.writeFileSync(path.join(app, "tsconfig.json"), JSON.stringify(tsconfig()))
}

const compile = async (project: Project) => {
  for (const { dir } of compilers) {
    const tsc = path.join(tools, "node_modules", dir, "bin", "tsc")
    project.tsc[dir] = await run(process.execPath, [tsc, "-p", "tsconfig.json"], project.app, {
      timeoutMs: 180_000,
      env: userEnv()
    })
  }
}

beforeAll(async () => {
  temp = fs.mkdtempSync(path.join(os.tmpdir(), "lazydial-pack-"))
  tools = path.join(temp, "tools")
  for (const project of projects) project.app = path.join(temp, project.id)

  await must(run("pnpm", ["build"], repo), "pnpm build")
  for (const dir of packages) {
    const before = new Set(fs.readdirSync(temp))
    await must(
      run("pnpm", ["pack", "--pack-destination", temp], path.join(repo, "packages", dir)),
      `pnpm pack (${dir})`
    )
    const file = fs.readdirSync(temp).find((f) => f.endsWith(".tgz") && !before.has(f))
    if (file === undefined) throw new Error(`pnpm pack wrote no tarball for ${dir}`)
    const tgz = path.join(temp, file)
    const entries = (await must(run("tar", ["tzf", tgz], temp), "tar")).split("\n").filter((line) => line !== "")
    const manifest = JSON.parse(await must(run("tar", ["xzOf", tgz, "package/package.json"], temp), "tar")) as Manifest
    const readme = await must(run("tar", ["xzOf", tgz, "package/README.md"], temp), "tar")
    tarballs[manifest.name] = { file: tgz, entries, manifest, readme }
  }

  fs.mkdirSync(tools)
  fs.writeFileSync(path.join(tools, "package.json"), JSON.stringify({ name: "tools", private: true }))
  const workspaceVersion = (name: string) =>
    readJson<Manifest>(path.join(repo, "node_modules", name, "package.json")).version
  // npm installs side by side, each project in its own directory, sharing only npm's cache.
  const [toolsError] = await Promise.all([
    must(
      npmInstall([
        "--loglevel=error",
        `typescript@${workspaceVersion("typescript")}`,
        "typescript-latest@npm:typescript@latest",
        `@types/node@${workspaceVersion("@types/node").split(".")[0]}`
      ], tools),
      "npm install of this test's TypeScript"
    ).then((): string | undefined => undefined, (error: unknown) => String(error)),
    ...projects.map((project) => install(project).catch((error: unknown) => project.errors.push(String(error))))
  ])
  // tsc takes a core, and a CI run has two: one project at a time.
  for (const project of projects) {
    if (!project.install.ok) continue
    try {
      prepare(project)
      if (toolsError !== undefined) throw new Error(toolsError)
      await compile(project)
    } catch (error) {
      project.errors.push(String(error))
    }
  }
})

afterAll(() => {
  if (temp !== "" && process.env.LAZYDIAL_KEEP_PACK === undefined) fs.rmSync(temp, { recursive: true, force: true })
})

// ---------------------------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------------------------

describe.each(packages)("the %s tarball", (dir) => {
  const tarball = () => tarballs[workspaceManifest(dir).name]!

  it("holds README, LICENSE, package.json and the compiled modules with their types", () => {
    const { entries } = tarball()
    for (const file of ["README.md", "LICENSE", "package.json", "dist/index.js", "dist/index.d.ts"]) {
      expect(entries, file).toContain(`package/${file}`)
    }
    const modules = entries.filter((e) => /^package\/dist\/[A-Za-z]+\.js$/.test(e))
    expect(modules.length).toBeGreaterThan(2)
    for (const module of modules) expect(entries).toContain(module.replace(/\.js$/, ".d.ts"))
  })

  it("holds the workspace's README, with an install line and an example", () => {
    expect(tarball().readme).toBe(readmes[dir])
    expect(installLines(tarball().readme)).not.toEqual([])
    expect(examples(tarball().readme)).not.toEqual([])
  })

  it("holds no tests, benches, examples, scripts, tsconfigs or build info", () => {
    const unwanted = tarball().entries.filter((e) =>
      /^package\/(test|bench|examples|scripts|\.bench-build|\.tsbuildinfo)\//.test(e) ||
      /tsconfig[^/]*\.json$|\.tsbuildinfo$|vitest\.config/.test(e)
    )
    expect(unwanted).toEqual([])
  })

  it("points its exports at dist, refuses internal/*, takes effect as a peer, and needs the workspace's Node", () => {
    const { manifest } = tarball()
    expect(JSON.stringify(manifest.exports)).not.toContain("/src/")
    expect(manifest.exports?.["./internal/*"]).toBeNull()
    expect(manifest.engines?.node).toBe(rootManifest.engines?.node)
    expect(manifest.peerDependencies?.effect).toBeDefined()
    expect(manifest.dependencies?.effect).toBeUndefined()
    expect(JSON.stringify(manifest)).not.toContain("workspace:")
  })

  it("names itself and every peer it requires on each of its README's install lines", () => {
    const { manifest } = tarball()
    const required = Object.keys(manifest.peerDependencies ?? {})
      .filter((peer) => manifest.peerDependenciesMeta?.[peer]?.optional !== true)
    for (const line of installLines(readmes[dir]!)) {
      expect(namesOf(line), line.label).toContain(manifest.name)
      for (const peer of required) expect(namesOf(line), `${line.label}: ${peer}`).toContain(peer)
    }
  })

  it("takes what only some of its install lines name (a database driver) as an optional peer, not a dependency", () => {
    const { manifest } = tarball()
    const lines = installLines(readmes[dir]!).map(namesOf)
    const some = [...new Set(lines.flat())].filter((name) => !lines.every((line) => line.includes(name)))
    for (const name of some) {
      expect(manifest.dependencies?.[name], name).toBeUndefined()
      expect(manifest.peerDependenciesMeta?.[name]?.optional, name).toBe(true)
    }
  })
})

it("runs every README example in the fresh project of at least one of its README's install lines", () => {
  for (const dir of packages) {
    const ran = new Set(projects.filter((p) => p.dir === dir && p.install.ok).flatMap((p) => p.examples))
    expect([...ran].sort(), dir).toEqual(examples(readmes[dir]!).map((_, index) => exampleFile(index)))
  }
})

it("loads every public module of each package in the fresh project of at least one of its README's lines", () => {
  for (const dir of packages) {
    const { entries, manifest } = tarballs[workspaceManifest(dir).name]!
    const loaded = new Set(projects.filter((p) => p.dir === dir).flatMap((p) => p.modules))
    const never = publicModules(manifest, entries).map(([subpath]) => specifierOf(manifest.name, subpath))
      .filter((specifier) => !loaded.has(specifier))
    expect(never, dir).toEqual([])
  }
})

describe.each(projects.map((project) => [`${project.dir} README, ${project.line.label}`, project] as const))(
  "a fresh project: %s",
  (_, project) => {
    // The first test shows npm's output; the others only say that they could not run.
    const ready = () => {
      expect(project.install.ok, "npm install failed (its output is in the first test of this project)").toBe(true)
      expect(project.errors).toEqual([])
    }

    it(`npm installs it as written, with no peer dependency warning: npm install ${project.line.args.join(" ")}`, () => {
      expect(project.install.ok, `npm install failed:\n${project.install.stderr}`).toBe(true)
      expect(project.install.stderr.split("\n").filter((line) => /ERESOLVE|peer/i.test(line))).toEqual([])
    })

    it("holds one copy of effect, its own", async () => {
      ready()
      const copies = (await must(
        run("find", ["node_modules", "-path", "*/effect/package.json", "-not", "-path", "*/src/*"], project.app),
        "find"
      )).split("\n").filter((line) => line.endsWith("/effect/package.json"))
      expect(copies).toEqual(["node_modules/effect/package.json"])
    })

    it("holds the optional peers the line names, and no other", () => {
      ready()
      for (const name of project.installed) {
        for (const [peer, meta] of Object.entries(tarballs[name]!.manifest.peerDependenciesMeta ?? {})) {
          if (meta.optional === true) {
            expect(installedIn(project.app, peer), peer).toBe(namesOf(project.line).includes(peer))
          }
        }
      }
    })

    it("loads each package's root; a module left out needs an optional peer the line did not install", () => {
      ready()
      expect(project.undeclared).toEqual([])
      for (const name of project.installed) expect(project.modules).toContain(name)
    })

    it.each(compilers)("typechecks its README examples and every module it loads with skipLibCheck: false ($label)", (
      { dir }
    ) => {
      ready()
      const version = readJson<Manifest>(path.join(tools, "node_modules", dir, "package.json")).version
      const { ok, stderr, stdout } = project.tsc[dir]!
      expect(`${stdout}${stderr}`, `TypeScript ${version}`).toBe("")
      expect(ok).toBe(true)
    })

    it("runs its README examples: each exits 0, prints its result, and writes nothing to stderr", async () => {
      ready()
      for (const file of project.examples) {
        const result = await run(process.execPath, [`out/${file.replace(/\.ts$/, ".js")}`], project.app, {
          timeoutMs: 120_000,
          env: userEnv()
        })
        expect(result.stderr, file).toBe("")
        expect(result.ok, file).toBe(true)
        expect(result.stdout.trim(), file).not.toBe("")
        expect(result.stdout, file).not.toMatch(/level=(ERROR|FATAL)|\bError\b/)
      }
    })

    it("imports every module it loads at run time, each with exports", async () => {
      ready()
      const stdout = await must(
        run(process.execPath, ["out/modules.js"], project.app, { env: userEnv() }),
        "modules.js"
      )
      const loaded = JSON.parse(stdout) as Array<[string, number]>
      expect(loaded.map(([name]) => name)).toEqual(project.modules)
      for (const [name, exports] of loaded) expect(exports, name).toBeGreaterThan(0)
    })

    it("refuses the internal modules (ERR_PACKAGE_PATH_NOT_EXPORTED)", async () => {
      ready()
      for (const name of project.installed) {
        const internal = tarballs[name]!.entries.find((e) => /^package\/dist\/internal\/[^/]+\.js$/.test(e))
        expect(internal, name).toBeDefined()
        const specifier = `${name}/internal/${path.basename(internal!, ".js")}`
        const probe = await must(
          run(
            process.execPath,
            [
              "--input-type=module",
              "-e",
              `import(${JSON.stringify(specifier)}).then(() => console.log("loaded"), (e) => console.log(e.code))`
            ],
            project.app,
            { env: userEnv() }
          ),
          "import probe"
        )
        expect(probe, specifier).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED\n")
      }
    })
  }
)
