#!/usr/bin/env node
/**
 * The entry point of `lazydial-harness`: `pnpm start -- --help` from the
 * repository root. Run from source with `tsx`: the harness is a tool of the
 * repository, never deployed.
 *
 * @since 0.2.0
 */
import { Cli } from "@lazydial/service"
import { main } from "./Cli.js"

Cli.runMain(main(process.argv))
