/**
 * @since 0.2.0
 */
export * as Cli from "./Cli.js"
export * as Cluster from "./Cluster.js"
export * as Html from "./Html.js"
export * as OneProcess from "./OneProcess.js"
export * as Render from "./Render.js"
export * as Report from "./Report.js"
export * as Workload from "./Workload.js"
