// What the agent run needs beyond its flags and agent-start.ts, in one module that `main` imports
// once backend selection has started: --help, --version and a usage error never evaluate the
// config loader, the backends or the HTTP server (docs/performance.md). Nothing happens on import.
export { createAgent } from './agent/agent.js';
export { createStaleFlowCleaner } from './backends/conntrack.js';
export { readConntrackPressure } from './observe/conntrack-pressure.js';
export { createDecisionCounts } from './observe/decision-counts.js';
export { systemClock } from './agent/clock.js';
export { watchConfig } from './agent/watch.js';
export { defaultConfig } from './config/merge.js';
export { ParseCache, detectConfigMode, loadConfig } from './config/load.js';
export { maxCidrsFor } from './limits.js';
export { coalesceNotes } from './observe/coalesce-notes.js';
export { createMetrics } from './observe/metrics.js';
export { healthRoutes, metricsRoutes } from './server/routes.js';
export { startHttpServer } from './server/http.js';
