// What the agent run needs first, in one module that `main` imports once the flags are read: the
// logger, the runner and backend selection. Selection's commands then run in their own processes
// while `main` imports the rest (agent-runtime.ts: config loader, agent, HTTP server), so loading
// that code overlaps their wall time instead of adding to it (docs/performance.md). Nothing
// happens on import.
export { selectBackend } from './backends/select.js';
export { createRunner } from './exec/runner.js';
export { createLogger, createStdoutWriter } from './observe/log.js';
