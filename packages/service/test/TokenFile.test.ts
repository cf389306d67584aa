/**
 * The token file, line by line: every row of `Auth`'s table is a test. A
 * refused file names the line and the rule, never the line's text.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs/promises"
import * as Auth from "../src/Auth.js"

const token = (n: number) => `token-${String(n).padStart(4, "0")}-abcdefghijkl`

const parse = (text: string) => Effect.runSyncExit(Auth.parseTokenFile("tokens.csv", text))

const parsed = (text: string) => {
  const exit = parse(text)
  if (Exit.isFailure(exit)) throw new Error(`refused: ${String(exit.cause)}`)
  return exit.value
}

/** The refusal of `text`: its line and its message. */
const refusal = (text: string) => {
  const exit = parse(text)
  if (Exit.isSuccess(exit)) throw new Error("the file was accepted")
  const error = Exit.findErrorOption(exit).pipe(Option.getOrThrow)
  return { line: error.line, message: error.message }
}

const userOf = (file: Auth.TokenFile, value: string) => Option.getOrUndefined(file.authenticate(Redacted.make(value)))

describe("a token file", () => {
  it("token,user,uid is a user with no group; a quoted fourth field is a list of groups", () => {
    const file = parsed([
      `${token(1)},alice,1001`,
      `${token(2)},bob,1002,"operators,dev"`,
      `${token(3)},carol,1003,dev`
    ].join("\n"))
    expect(userOf(file, token(1))).toEqual({ name: "alice", uid: "1001", groups: [] })
    expect(userOf(file, token(2))).toEqual({ name: "bob", uid: "1002", groups: ["operators", "dev"] })
    expect(userOf(file, token(3))).toEqual({ name: "carol", uid: "1003", groups: ["dev"] })
    expect(file.users).toEqual(["alice", "bob", "carol"])
  })

  it("an unknown token, an empty one, or a known one with a byte changed, is no user", () => {
    const file = parsed(`${token(1)},alice,1001`)
    expect(userOf(file, token(2))).toBeUndefined()
    expect(userOf(file, "")).toBeUndefined()
    expect(userOf(file, token(1).slice(0, -1) + "m")).toBeUndefined()
    expect(userOf(file, token(1) + " ")).toBeUndefined()
  })

  it("blank lines, spaces-only lines and # comments are skipped; CRLF and a BOM are read as plain lines", () => {
    const file = parsed(`\uFEFF# the users\r\n\r\n   \r\n  # indented comment\r\n${token(1)}, alice , 1001 \r\n`)
    expect(userOf(file, token(1))).toEqual({ name: "alice", uid: "1001", groups: [] })
  })

  it("a user may have several tokens, listed once among the users", () => {
    const file = parsed(`${token(1)},alice,1001\n${token(2)},alice,1001`)
    expect(userOf(file, token(2))?.name).toBe("alice")
    expect(file.users).toEqual(["alice"])
  })

  it("\"\" inside a quoted field is a quote; a quoted user name may hold a comma", () => {
    const file = parsed(`${token(1)},"smith, ""al""",1001,""`)
    expect(userOf(file, token(1))).toEqual({ name: "smith, \"al\"", uid: "1001", groups: [] })
  })

  // every refusal: the line, and the rule in words
  const refused: ReadonlyArray<readonly [string, string, number | undefined, RegExp]> = [
    ["fewer than 3 fields", `${token(1)},alice`, 1, /expected token,user,uid.*found 2 fields/],
    ["one field", `${token(1)}`, 1, /found 1 field\b/],
    [
      "more than 4 fields (an unquoted group list)",
      `${token(1)},alice,1,operators,dev`,
      1,
      /found 5 fields \(quote a list of groups\)/
    ],
    ["a quote that does not close on its line", `${token(1)},alice,1,"operators,dev`, 1, /quoted field does not close/],
    ["text after a closing quote", `${token(1)},"alice"x,1`, 1, /text follows a closing quote/],
    ["a quote inside an unquoted field", `${token(1)},al"ice,1`, 1, /quote inside an unquoted field/],
    ["an empty token", `,alice,1`, 1, /the token is empty/],
    ["a token with a space", `token with space 0123456789,alice,1`, 1, /a character a bearer token cannot carry/],
    ["a token with a non-ASCII letter", `tökenabcdefghijklmnop,alice,1`, 1, /a character a bearer token cannot carry/],
    ["a token under 16 characters", `short-token,alice,1`, 1, /shorter than 16 characters/],
    ["an empty user", `${token(1)},,1`, 1, /the user name is empty/],
    ["an empty uid", `${token(1)},alice,`, 1, /the uid is empty/],
    ["an empty group in the list", `${token(1)},alice,1,"operators,,dev"`, 1, /an empty group name/],
    ["a control character in a user name", `${token(1)},al\u0007ice,1`, 1, /the user name has a control character/],
    [
      "a control character in a group",
      `${token(1)},alice,1,"dev\u001b[31m"`,
      1,
      /the group list has a control character/
    ],
    ["a token already on an earlier line", `${token(1)},alice,1\n\n${token(1)},bob,2`, 3, /the same token as line 1/],
    ["no token line at all", "# only a comment\n\n", undefined, /no token line/],
    ["an empty file", "", undefined, /no token line/]
  ]
  for (const [what, text, line, rule] of refused) {
    it(`refuses the whole file for ${what}, naming the line`, () => {
      const error = refusal(text)
      expect(error.line).toBe(line)
      expect(error.message).toMatch(rule)
      expect(error.message).toContain(`the token file tokens.csv${line === undefined ? ":" : ` line ${line}:`}`)
    })
  }

  it("a bad line after good ones refuses the file: nothing of it is loaded", () => {
    const error = refusal(`${token(1)},alice,1\n${token(2)},bob,2\n${token(3)},carol`)
    expect(error.line).toBe(3)
  })

  it("a refusal never shows the line's text, which may hold a token", () => {
    const secret = "s3cr3t-token-value-0123456789"
    for (const text of [`${secret},alice`, `${secret},,1`, `${secret},alice,1\n${secret},bob,2`]) {
      expect(refusal(text).message).not.toContain(secret)
    }
  })
})

describe("reading a token file", () => {
  it.effect("a missing file, a directory, and a file over 1 MiB are refused with what is wrong", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => Fs.mkdtemp("/tmp/lazydial-token-test-"))
      const big = `${dir}/big.csv`
      yield* Effect.promise(() => Fs.writeFile(big, "#".repeat(1_048_577)))
      const missing = yield* Effect.flip(Auth.readTokenFile(`${dir}/none.csv`))
      expect(missing.message).toBe(`the token file ${dir}/none.csv: cannot read it: no such file`)
      const directory = yield* Effect.flip(Auth.readTokenFile(dir))
      expect(directory.message).toContain("not a regular file")
      const tooBig = yield* Effect.flip(Auth.readTokenFile(big))
      expect(tooBig.message).toContain("larger than 1048576 bytes")
      yield* Effect.promise(() => Fs.rm(dir, { recursive: true }))
    }))

  it.effect("a written token file is private (0700 directory, 0600 file), reads back, and is removed with its scope", () =>
    Effect.gen(function*() {
      const written = yield* Effect.scoped(Effect.gen(function*() {
        const file = yield* Auth.writeTokenFile([{ name: "demo", groups: [Auth.operators] }, { name: "other" }])
        const stat = yield* Effect.promise(() => Fs.stat(file.path))
        const dirStat = yield* Effect.promise(() => Fs.stat(file.path.replace(/\/tokens\.csv$/, "")))
        expect(stat.mode & 0o777).toBe(0o600)
        expect(dirStat.mode & 0o777).toBe(0o700)
        const read = yield* Auth.readTokenFile(file.path)
        expect(Option.getOrThrow(read.authenticate(Redacted.make(file.tokens["demo"]!)))).toEqual({
          name: "demo",
          uid: "demo",
          groups: [Auth.operators]
        })
        expect(read.users).toEqual(["demo", "other"])
        return file.path
      }))
      const gone = yield* Effect.promise(() => Fs.stat(written).then(() => false, () => true))
      expect(gone).toBe(true)
    }))
})
