#!/usr/bin/env node
/**
 * The entry point: `pnpm --filter @lazydial/service start -- --help`.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Runtime from "effect/Runtime"
import { main } from "./Cli.js"

// `pnpm start -- --seed 2` hands the `--` on to the program: drop it.
const argv = process.argv[2] === "--" ? [...process.argv.slice(0, 2), ...process.argv.slice(3)] : process.argv

// Logs (the access log, warnings) go to stderr as logfmt: stdout carries
// --json and the machine-readable address line of `serve` and `fleet`.
const logger = Logger.layer([Logger.withConsoleError(Logger.formatLogFmt)])

// A variable set to the empty string is a value (refused where it must not be
// empty, as `LAZYDIAL_DATABASE_URL=` is), not an unset one: Effect 4's default
// provider would read it as unset and fall back silently (to PGlite, there).
const environment = Layer.succeed(ConfigProvider.ConfigProvider)(ConfigProvider.fromEnv({ preserveEmptyStrings: true }))

// SIGTERM and SIGINT interrupt the program, which then shuts down in order: a
// stop asked for is a clean stop (exit 0, not Effect's 130), as supervisors
// expect. Any other end is Effect's own code.
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

main(argv).pipe(
  Effect.provide(Layer.mergeAll(NodeServices.layer, logger, environment)),
  NodeRuntime.runMain({ disableErrorReporting: false, teardown })
)
