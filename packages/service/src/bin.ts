#!/usr/bin/env node
/**
 * The entry point of `lazydial-service` (`serve`, `fleet`), compiled to
 * `dist/bin.js` and run by `node` itself (`pnpm --filter @lazydial/service
 * build`, then `node packages/service/dist/bin.js serve --help`), so that the
 * signals a supervisor sends reach this process: see docs/deployment.md.
 *
 * @since 0.1.0
 */
import { main, runMain } from "./Cli.js"

runMain(main(process.argv))
