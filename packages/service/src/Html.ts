/**
 * The report as a self-contained HTML page.
 *
 * @since 0.1.0
 */
import type { Report } from "./Report.js"

/**
 * @since 0.1.0
 * @category rendering
 */
export const page = (report: Report): string => `<!doctype html><pre>${JSON.stringify(report.settings)}</pre>`
