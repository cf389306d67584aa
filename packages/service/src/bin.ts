#!/usr/bin/env node
/**
 * The entry point: `pnpm --filter @lazydial/service start -- --help`.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { main } from "./Cli.js"

// `pnpm start -- --seed 2` hands the `--` on to the program: drop it.
const argv = process.argv[2] === "--" ? [...process.argv.slice(0, 2), ...process.argv.slice(3)] : process.argv

// Logs (the access log, warnings) go to stderr as logfmt: stdout carries
// --json and the machine-readable address line of `serve` and `fleet`.
const logger = Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))

main(argv).pipe(
  Effect.provide([NodeContext.layer, logger]),
  NodeRuntime.runMain({ disableErrorReporting: false })
)
