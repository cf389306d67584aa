import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as NodePath from "node:path"
import type { TokenFile, User } from "../Auth.js"

/** Why a token file is refused; the public module names the file. */
export interface Refusal {
  readonly line: number | undefined
  readonly reason: string
}

export const operators = "operators"

export const anonymous: User = { name: "anonymous", uid: "anonymous", groups: [operators] }

// A file of tokens is a few lines per user: 1 MiB is thousands of users, and a wrong path (a log, a dump) is
// refused before it is read into memory.
export const maxFileBytes = 1_048_576

export const minTokenChars = 16

// RFC 6750's b64token: what a `Authorization: Bearer` header can carry.
const b64token = /^[A-Za-z0-9\-._~+/]+=*$/

// C0 controls and DEL: never part of a name a log line or a table shows.
// eslint-disable-next-line no-control-regex
const control = /[\u0000-\u001f\u007f]/

type Fields = { readonly fields: ReadonlyArray<string> } | { readonly error: string }

/**
 * One CSV record on one line (RFC 4180, as Go's encoding/csv reads Kubernetes' file): fields split at commas, a
 * field in double quotes may hold commas and `""` for a quote. Space around a field is dropped. A quoted field that
 * does not close on its line is an error: no value of this file spans lines.
 */
export const splitLine = (line: string): Fields => {
  const fields: Array<string> = []
  let i = 0
  for (;;) {
    while (line[i] === " " || line[i] === "\t") i++
    if (line[i] === "\"") {
      let value = ""
      i++
      for (;;) {
        if (i >= line.length) return { error: "a quoted field does not close on its line" }
        const c = line[i]!
        if (c === "\"") {
          if (line[i + 1] === "\"") {
            value += "\""
            i += 2
            continue
          }
          i++
          break
        }
        value += c
        i++
      }
      while (line[i] === " " || line[i] === "\t") i++
      if (i < line.length && line[i] !== ",") return { error: "text follows a closing quote" }
      fields.push(value)
    } else {
      const end = line.indexOf(",", i)
      const value = line.slice(i, end < 0 ? line.length : end).trim()
      if (value.includes("\"")) return { error: "a quote inside an unquoted field (quote the whole field)" }
      fields.push(value)
      i = end < 0 ? line.length : end
    }
    if (i >= line.length) return { fields }
    // past the comma; a comma that ends the line leaves one empty field after it
    i++
  }
}

interface Entry {
  readonly digest: Buffer
  readonly user: User
}

const digestOf = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest()

/**
 * Parses the text of a token file. Every rule, with the answer:
 *
 * | line | answer |
 * |---|---|
 * | empty, or only spaces | skipped |
 * | first non-space character `#` | a comment, skipped (so no token starts with `#`) |
 * | `token,user,uid` | a user with no group |
 * | `token,user,uid,group` or `token,user,uid,"group1,group2"` | a user in those groups |
 * | fewer than 3 or more than 4 fields | refused |
 * | an empty token, user or uid; an empty group in the list | refused |
 * | a token with a character a bearer token cannot carry, or under 16 characters | refused |
 * | a control character in a user, uid or group | refused |
 * | a token already on an earlier line | refused, naming that line |
 * | no token line at all | refused |
 *
 * A refusal names the line (1-based) and the rule, never the line's text: it may hold a token.
 */
export const parse = (text: string): { readonly entries: ReadonlyArray<Entry> } | {
  readonly line: number | undefined
  readonly reason: string
} => {
  const entries: Array<Entry> = []
  const seen = new Map<string, number>()
  const lines = text.replace(/^\uFEFF/, "").split("\n")
  for (let index = 0; index < lines.length; index++) {
    const line = index + 1
    const raw = lines[index]!.replace(/\r$/, "")
    const trimmed = raw.trim()
    if (trimmed === "" || trimmed.startsWith("#")) continue
    const split = splitLine(raw)
    if ("error" in split) return { line, reason: split.error }
    const { fields } = split
    if (fields.length < 3 || fields.length > 4) {
      return {
        line,
        reason: `expected token,user,uid[,"group1,group2"]: found ${fields.length} field${
          fields.length === 1 ? "" : "s"
        }${fields.length > 4 ? " (quote a list of groups)" : ""}`
      }
    }
    const [token, name, uid, groupList] = fields as [string, string, string, string | undefined]
    if (token === "") return { line, reason: "the token is empty" }
    if (!b64token.test(token)) {
      return {
        line,
        reason: "the token has a character a bearer token cannot carry (letters, digits, -._~+/ and a trailing =)"
      }
    }
    if (token.length < minTokenChars) {
      return { line, reason: `the token is shorter than ${minTokenChars} characters: too easy to guess` }
    }
    if (name === "") return { line, reason: "the user name is empty" }
    if (uid === "") return { line, reason: "the uid is empty" }
    const groups = groupList === undefined || groupList.trim() === ""
      ? []
      : groupList.split(",").map((group) => group.trim())
    if (groups.includes("")) return { line, reason: "an empty group name in the list of groups" }
    for (const [what, value] of [["user name", name], ["uid", uid], ["group list", groups.join(",")]] as const) {
      if (control.test(value)) return { line, reason: `the ${what} has a control character` }
    }
    const earlier = seen.get(token)
    if (earlier !== undefined) return { line, reason: `the same token as line ${earlier}` }
    seen.set(token, line)
    entries.push({ digest: digestOf(token), user: { name, uid, groups } })
  }
  if (entries.length === 0) return { line: undefined, reason: "no token line: every request would be refused" }
  return { entries }
}

/** The table of a parsed file, and the users in file order, each once. */
export const make = (entries: ReadonlyArray<Entry>): TokenFile => {
  const users = [...new Set(entries.map((entry) => entry.user.name))]
  return {
    users,
    authenticate: (token) => {
      // Every entry is compared, with no early exit, on SHA-256 digests of equal length: the time taken depends on
      // the number of entries only, never on how much of a token an attacker guessed right.
      const digest = digestOf(Redacted.value(token))
      let found: User | undefined = undefined
      for (const entry of entries) {
        if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry.user
      }
      return Option.fromNullishOr(found)
    }
  }
}

export const fromText = (text: string): Effect.Effect<TokenFile, Refusal> => {
  const parsed = parse(text)
  return "entries" in parsed ? Effect.succeed(make(parsed.entries)) : Effect.fail(parsed)
}

const describe = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code === "ENOENT" ? "no such file" : cause.code === "EACCES" ? "permission denied" : cause.code
    : String(cause)

export const readFile = (path: string): Effect.Effect<TokenFile, Refusal> =>
  Effect.gen(function*() {
    const failed = (reason: string): Refusal => ({ line: undefined, reason })
    const stat = yield* Effect.tryPromise({
      try: () => Fs.stat(path),
      catch: (cause) => failed(`cannot read it: ${describe(cause)}`)
    })
    if (!stat.isFile()) return yield* Effect.fail(failed("not a regular file"))
    if (stat.size > maxFileBytes) {
      return yield* Effect.fail(failed(`larger than ${maxFileBytes} bytes: not a token file`))
    }
    // readable by others than its owner: the tokens are as good as published on a shared machine
    if ((stat.mode & 0o077) !== 0) {
      yield* Effect.logWarning(
        `the token file ${path} can be read by other users than its owner (mode ${
          (stat.mode & 0o777).toString(8)
        }): chmod 600 it`
      )
    }
    const text = yield* Effect.tryPromise({
      try: () => Fs.readFile(path, "utf8"),
      catch: (cause) => failed(`cannot read it: ${describe(cause)}`)
    })
    return yield* fromText(text)
  })

/** A fresh token: 32 random bytes, base64url (43 characters). */
export const newToken = (): string => randomBytes(32).toString("base64url")

export const quote = (value: string) => /[",]/.test(value) ? `"${value.replaceAll("\"", "\"\"")}"` : value

export const writeFile = (
  users: ReadonlyArray<{ readonly name: string; readonly groups?: ReadonlyArray<string> | undefined }>
) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        // mkdtemp makes the directory 0700; the file is 0600 from its creation (no window where it is readable)
        const directory = await Fs.mkdtemp(NodePath.join(Os.tmpdir(), "lazydial-tokens-"))
        const path = NodePath.join(directory, "tokens.csv")
        const tokens = users.map((user) => ({ ...user, token: newToken() }))
        const text = tokens.map((user) =>
          [
            user.token,
            quote(user.name),
            quote(user.name),
            ...(user.groups?.length ? [quote(user.groups.join(","))] : [])
          ]
            .join(",")
        ).join("\n") + "\n"
        await Fs.writeFile(path, text, { mode: 0o600, flag: "wx" })
        return { directory, path, tokens: Object.fromEntries(tokens.map((user) => [user.name, user.token])) }
      },
      catch: (cause): Refusal => ({ line: undefined, reason: `cannot write it: ${describe(cause)}` })
    }),
    ({ directory }) => Effect.promise(() => Fs.rm(directory, { recursive: true, force: true }))
  )
