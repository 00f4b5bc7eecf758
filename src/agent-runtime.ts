// What the agent run needs beyond its flags, in one module that `main` imports only once the
// flags are read: --help, --version and a usage error never evaluate the config schema, the YAML
// parser, the backends or the HTTP server (README "Performance"). Nothing happens on import.
export { createAgent } from './agent/agent.js';
export { systemClock } from './agent/clock.js';
export { watchConfig } from './agent/watch.js';
export { selectBackend } from './backends/select.js';
export { defaultConfig } from './config/config.js';
export { createParseCache, detectConfigMode, loadConfig } from './config/load.js';
export { createRunner } from './exec/runner.js';
export { maxCidrsFor } from './limits.js';
export { createLogger } from './observe/log.js';
export { createMetrics } from './observe/metrics.js';
export { healthRoutes, metricsRoutes } from './server/routes.js';
export { startHttpServer } from './server/http.js';
