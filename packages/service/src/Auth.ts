/**
 * Who is calling: static bearer tokens, read from a file in the format of
 * Kubernetes' `--token-auth-file`, one user per line:
 *
 * ```
 * # token,user,uid[,"group1,group2"]
 * 0QnUhd3R1lBd0ITl0r1Qu9cHQ4ydb9y6gZ1e2DiVVGQ,alice,1001
 * 3HG5F5b8QY0eAwbVbN3dY3rQIshxGr6S8oKeoDDKd6I,bob,1002,"operators,dev"
 * ```
 *
 * | line | answer |
 * |---|---|
 * | empty, or only spaces | skipped |
 * | first non-space character `#` | a comment, skipped (so no token starts with `#`) |
 * | `token,user,uid` | a user with no group |
 * | `token,user,uid,group` or `token,user,uid,"group1,group2"` | a user in those groups |
 * | fewer than 3 or more than 4 fields, a quote that does not close on its line, text after a closing quote | refused |
 * | an empty token, user or uid; an empty group in the list | refused |
 * | a token with a character a bearer token cannot carry, or under 16 characters | refused |
 * | a control character in a user, uid or group | refused |
 * | a token already on an earlier line | refused, naming that line |
 * | no token line at all, a file over 1 MiB | refused |
 *
 * A file with any refused line is refused whole, at start, with the line
 * number and the rule; nothing of it is loaded. No message ever shows a
 * line's text, which may hold a token.
 *
 * A request's token is compared with every token of the file, in constant
 * time (`crypto.timingSafeEqual` on SHA-256 digests, no early exit): the time
 * depends on the number of users only. A user is known by name: the owner of
 * a chat or a workspace is a user name.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/auth.js"

/**
 * A caller, as its line of the token file names it.
 *
 * @since 0.2.0
 * @category models
 */
export interface User {
  readonly name: string
  readonly uid: string
  readonly groups: ReadonlyArray<string>
}

/**
 * The group whose members may rebuild, stop and start workspaces.
 *
 * @since 0.2.0
 * @category constants
 */
export const operators: string = internal.operators

/**
 * @since 0.2.0
 * @category predicates
 */
export const isOperator = (user: User): boolean => user.groups.includes(operators)

/**
 * The one caller of a server started with `--no-auth`: every request is
 * `anonymous`, in the group `operators` (the server trusts whoever reaches
 * its port, as before authentication existed).
 *
 * @since 0.2.0
 * @category constants
 */
export const anonymous: User = internal.anonymous

/**
 * The token file could not be used: the process does not start. `line` is
 * the first refused line (1-based), when the fault is a line's.
 *
 * @since 0.2.0
 * @category errors
 */
export class TokenFileError extends Schema.TaggedError<TokenFileError>()("TokenFileError", {
  path: Schema.String,
  line: Schema.UndefinedOr(Schema.Number),
  reason: Schema.String
}) {
  override get message(): string {
    return `the token file ${this.path}${this.line === undefined ? "" : ` line ${this.line}`}: ${this.reason}` +
      (this.line === undefined ? "" : " (each line: token,user,uid[,\"group1,group2\"])")
  }
}

/**
 * A parsed token file.
 *
 * @since 0.2.0
 * @category models
 */
export interface TokenFile {
  /** The user a token belongs to. Constant time over the file. */
  readonly authenticate: (token: Redacted.Redacted<string>) => Option.Option<User>
  /** Every user of the file, in file order, each once. */
  readonly users: ReadonlyArray<string>
}

/**
 * How the server authenticates: with a token file, or not at all
 * (`--no-auth`: every caller is `anonymous`).
 *
 * @since 0.2.0
 * @category tags
 */
export class Authentication extends Context.Service<
  Authentication,
  {
    readonly mode: "tokens" | "disabled"
    /** The caller a bearer token names (`""`: no token); None: 401. */
    readonly authenticate: (token: Redacted.Redacted<string>) => Option.Option<User>
    /** The users, in file order (`anonymous` alone when disabled): the fleet's default owners. */
    readonly users: ReadonlyArray<string>
  }
>()("@lazydial/service/Auth/Authentication") {}

/**
 * The caller of the request being served, as authenticated.
 *
 * @since 0.2.0
 * @category tags
 */
export class CurrentUser extends Context.Service<CurrentUser, User>()("@lazydial/service/Auth/CurrentUser") {}

/**
 * Parses a token file's text (`path` names it in errors).
 *
 * @since 0.2.0
 * @category constructors
 */
export const parseTokenFile = (path: string, text: string): Effect.Effect<TokenFile, TokenFileError> =>
  Effect.mapError(internal.fromText(text), (refusal) => new TokenFileError({ path, ...refusal }))

/**
 * Reads and parses a token file. Warns when others than its owner can read
 * it.
 *
 * @since 0.2.0
 * @category constructors
 */
export const readTokenFile = (path: string): Effect.Effect<TokenFile, TokenFileError> =>
  Effect.mapError(internal.readFile(path), (refusal) => new TokenFileError({ path, ...refusal }))

/**
 * @since 0.2.0
 * @category constructors
 */
export const fromTokenFile = (file: TokenFile): Authentication["Service"] =>
  Authentication.of({ mode: "tokens", authenticate: file.authenticate, users: file.users })

/**
 * No authentication: every request is `anonymous`, an operator.
 *
 * @since 0.2.0
 * @category constructors
 */
export const disabled: Authentication["Service"] = Authentication.of({
  mode: "disabled",
  authenticate: () => Option.some(anonymous),
  users: [anonymous.name]
})

/**
 * @since 0.2.0
 * @category layers
 */
export const layerTokenFile = (path: string): Layer.Layer<Authentication, TokenFileError> =>
  Layer.effect(Authentication, Effect.map(readTokenFile(path), fromTokenFile))

/**
 * @since 0.2.0
 * @category layers
 */
export const layerDisabled: Layer.Layer<Authentication> = Layer.succeed(Authentication)(disabled)

/**
 * A token file of fresh random tokens (32 bytes each) for `users`, in a
 * private directory of the system's temp dir (mode 0700, the file 0600),
 * removed when the Scope closes: the one-process run and `cluster` make their
 * own. Answers its path and each user's token.
 *
 * @since 0.2.0
 * @category constructors
 */
export const writeTokenFile = (
  users: ReadonlyArray<{ readonly name: string; readonly groups?: ReadonlyArray<string> | undefined }>
): Effect.Effect<
  { readonly path: string; readonly tokens: Readonly<Record<string, string>> },
  TokenFileError,
  Scope.Scope
> =>
  Effect.mapError(
    internal.writeFile(users),
    (refusal) => new TokenFileError({ path: "(a new file in the system's temp dir)", ...refusal })
  )
