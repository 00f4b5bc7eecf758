#!/usr/bin/env node
// Composition root: the only place that builds real dependencies and touches `process`.
import { readFileSync } from 'node:fs';
import { agentOptionsFromFlags, type AgentOptions } from './cli/agent-options.js';
import { describeIgnoredArgs, formatFlagHelp, parseFlags, type IgnoredArgsWarning } from './cli/flags.js';
import { COMMANDS_HELP, isOperatorCommand, runOperatorCommand } from './cli/index.js';
import { UsageError } from './errors.js';
import type { ProcessRunner, Runner } from './exec/runner.js';
import type { LineWriter, Logger } from './observe/log.js';
import type { Routes } from './server/routes.js';

const USAGE = `Usage: ip-masq-agent [flags]
       ip-masq-agent COMMAND [flags] [args]

Runs the IP masquerade agent: keeps the nat rules that masquerade pod traffic to destinations
outside the non-masquerade CIDRs, from the config file, re-applied every resyncInterval and on
every config change.

Flags:
`;

const KLOG_HELP = '  klog flags (--v, --logtostderr, --alsologtostderr, --log_dir, --vmodule, ...) are accepted.';

/** The package version, read once from package.json next to the build output. */
function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function tracingRunner(runner: Runner, log: Logger): Runner {
  return async (argv, options) => {
    const started = Date.now();
    try {
      return await runner(argv, options);
    } finally {
      log.trace('command', { argv, ms: Date.now() - started });
    }
  };
}

/** Signals that come faster than this are logged as one line per this long, with their count. */
const SIGNAL_NOTE_WINDOW_MS = 1000;

/**
 * The last-resort policy. Every expected failure (a command that fails, times out or cannot even
 * start for want of descriptors) is a CommandError that fails one sync and is retried; so whatever
 * still reaches here is a bug. It is logged as one JSON line and the process exits 1, so the kubelet
 * restarts it and the bug is seen, not swallowed. Rules stay in place, as on SIGTERM. Commands
 * still running are killed: they run in process groups of their own, which no signal to the agent
 * reaches.
 */
function installLastResort(log: Logger, processRunner: ProcessRunner, output: LineWriter): void {
  process.on('exit', () => {
    processRunner.killAll();
    // The last lines (why it exits) held by a blocked stdout get a second, bounded chance.
    output.flush(1000);
  });
  const fatal =
    (kind: string) =>
    (e: unknown): void => {
      log.error(`fatal: ${kind}; exiting (a bug: please report it); the rules stay in place`, { error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      process.exit(1);
    };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled promise rejection'));
}

/**
 * A full collection soon after a new config is in force (docs/performance.md "Limits"): V8 keeps a large
 * config's parse garbage until its heap cap forces a collection, so a 10,000-CIDR agent would sit
 * at twice the memory it needs. A config change is rare; one collection costs milliseconds.
 * node:v8 and node:vm are loaded here, after the first sync's rules are in: at start they cost
 * about 10 ms before the rules (docs/performance.md).
 */
let gc: Promise<() => void> | undefined;
function collectGarbageSoon(): void {
  gc ??= Promise.all([import('node:v8'), import('node:vm')]).then(([v8, vm]) => {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  });
  void gc.then((collect) => setImmediate(collect));
}

async function runAgent(opts: AgentOptions, version: string, ignoredArgs: IgnoredArgsWarning | undefined): Promise<void> {
  const { createLogger, createRunner, createStdoutWriter, selectBackend } = await import('./agent-start.js');
  const output = createStdoutWriter();
  const log = createLogger(opts.verbosity, output.write);
  log.info('ip-masq-agent starting', { version, node: process.version, options: { ...opts, policy: { ...opts.policy, toPorts: opts.policy.toPorts.map((r) => r.text) } } });
  if (ignoredArgs) log.warn(ignoredArgs.message, { ignored: ignoredArgs.ignored, hints: ignoredArgs.hints });
  const processRunner = createRunner({ timeoutMs: opts.commandTimeoutMs });
  installLastResort(log, processRunner, output);
  const runner = tracingRunner(processRunner, log);
  const selection = selectBackend({ backend: opts.backend, iptablesMode: opts.iptablesMode, chain: opts.chain, runner, log, enableIPv6: opts.policy.enableIPv6 });
  // Handled at once, so that a failure waits, unreported, until it is awaited below.
  selection.catch(() => undefined);
  // The rest of the agent loads while selection's first commands run in their processes: one turn
  // of the event loop first, so that every command selection starts at once has been spawned.
  await new Promise((resolve) => setImmediate(resolve));
  const {
    coalesceNotes,
    createAgent,
    createDecisionCounts,
    createMetrics,
    createStaleFlowCleaner,
    defaultConfig,
    detectConfigMode,
    healthRoutes,
    loadConfig,
    maxCidrsFor,
    metricsRoutes,
    ParseCache,
    readConntrackPressure,
    startHttpServer,
    systemClock,
    watchConfig,
  } = await import('./agent-runtime.js');
  const backend = await selection.catch((e: unknown) => {
    log.error('cannot start: no usable netfilter backend', { error: (e as Error).message });
    return process.exit(1);
  });
  // Read at scrape time (the counts at most once per 5 s); `agent` exists by the first scrape.
  const decisionCounts = createDecisionCounts({
    read: async () => (await backend.counters?.(agent.policy()?.families ?? [])) ?? [],
    now: systemClock.now,
  });
  const conntrackPressure = (): ReturnType<typeof readConntrackPressure> => readConntrackPressure((path) => readFileSync(path, 'utf8'));
  const metrics = createMetrics({ logLinesDropped: output.dropped, decisionCounts, conntrackPressure });
  // Decided once: a directory appearing where the file was later is an error, not a new mode.
  const configMode = detectConfigMode(opts.configPath);
  log.info(configMode === 'directory' ? 'config path is a directory: its ip-masq* files are merged' : 'config path is read as a file', { path: opts.configPath });
  const parseCache = new ParseCache();
  const agent = createAgent({
    // The detected backend's own cap, not the flags' guess (iptables-nft and -legacy differ).
    loadConfig: () => loadConfig(opts.configPath, { ...opts.config, cidrCap: { backend: backend.name, max: maxCidrsFor(backend.name) } }, configMode, parseCache, { clock: systemClock }),
    defaultConfig: () => defaultConfig(opts.config),
    backend,
    policyOptions: opts.policy,
    log,
    clock: systemClock,
    onSync: (report) => metrics.onSync(report),
    afterConfigChange: collectGarbageSoon,
    afterRulesChange: createStaleFlowCleaner({ run: runner, log, countDeleted: metrics.countDeletedFlows, deleteTcp: opts.conntrackDeleteTcp }),
  });
  const status = (): ReturnType<typeof agent.status> => agent.status();
  const servers: { close(): Promise<void> }[] = [];
  try {
    // One server when both flags name the same address; otherwise the second could not bind.
    const endpoints: [string, string, Routes][] = [
      ['--healthz-bind-address', opts.healthzBindAddress, healthRoutes(status, systemClock)],
      ['--metrics-bind-address', opts.metricsBindAddress, metricsRoutes(metrics, status)],
    ];
    const [health, metric] = endpoints;
    if (health && metric && health[1] === metric[1]) endpoints.splice(0, 2, [health[0], health[1], { ...health[2], ...metric[2] }]);
    for (const [flag, bindAddress, routes] of endpoints) {
      const server = await startHttpServer({ bindAddress, flag, routes, log });
      if (server) servers.push(server);
    }
  } catch (e) {
    log.error('cannot start: HTTP endpoint unavailable', { error: (e as Error).message });
    process.exit(1);
  }
  const isDirectory = (): boolean => configMode === 'directory';
  const stopWatching = watchConfig({ path: opts.configPath, isDirectory, onChange: () => void agent.sync('config changed'), clock: systemClock, log });
  const shutdown = (signal: string): void => {
    log.info('stopping; rules stay in place', { signal });
    stopWatching();
    for (const server of servers) void server.close();
    // Exit promptly: a running sync is atomic per family, so stopping mid-way leaves valid rules.
    setTimeout(() => process.exit(0), 1000).unref();
    void agent.stop().then(() => process.exit(0));
  };
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => shutdown(signal));
  const noteSignal = (msg: string): (() => void) =>
    coalesceNotes({ windowMs: SIGNAL_NOTE_WINDOW_MS, setTimer: systemClock.setTimer, note: (count) => log.info(msg, count === undefined ? {} : { signals: count }) });
  const noteSighup = noteSignal('SIGHUP: reloading config');
  process.on('SIGHUP', () => {
    noteSighup();
    // A storm folds into one sync after the running one (the agent's single flight).
    void agent.sync('SIGHUP');
  });
  process.on('SIGUSR1', noteSignal('SIGUSR1 ignored: the agent opens no debugger on a signal, and has no log file to reopen (it logs to stdout)'));
  await agent.start();
}

/** Entry point: runs an operator command (validate, render, ...) or, by default, the agent. */
export async function main(argv: readonly string[]): Promise<number> {
  // On SIGUSR1 node opens its inspector on 127.0.0.1:9229: code run as root with NET_ADMIN for
  // anyone who reaches the node's loopback. A listener of our own keeps it from doing so, on every
  // Node version; it is installed first thing (Node >= 22.14 also takes --disable-sigusr1).
  process.on('SIGUSR1', () => {});
  if (isOperatorCommand(argv[0])) {
    const { createRunner } = await import('./exec/runner.js');
    const runner = createRunner();
    // Its commands run in process groups of their own, which a Ctrl-C does not reach.
    process.on('exit', () => runner.killAll());
    process.once('SIGINT', () => process.exit(130));
    process.once('SIGTERM', () => process.exit(143));
    return runOperatorCommand(argv, { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) }, { runner });
  }
  const version = readVersion();
  try {
    const flags = parseFlags(argv);
    if (flags.help) {
      process.stdout.write(`${USAGE}${formatFlagHelp()}\n${KLOG_HELP}\n\n${COMMANDS_HELP}`);
      return 0;
    }
    if (flags.version) {
      // The runtime too: the image pins it, and `kubectl exec ... --version` is how an operator checks.
      process.stdout.write(`ip-masq-agent ${version}\nnode ${process.version}\n`);
      return 0;
    }
    // Go's flag parsing (the reference's) ignores everything from the first non-flag on; run with
    // the same values, so the same DaemonSet args work, and say so once at start.
    const ignoredArgs = describeIgnoredArgs(argv, flags);
    // The one UsageError runAgent could meet (a bind address) is caught there: it was checked here first.
    await runAgent(agentOptionsFromFlags(flags), version, ignoredArgs);
    return -1; // keeps running
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`ip-masq-agent: ${e.message}\nRun 'ip-masq-agent --help' for usage.\n`);
      return 2;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`ip-masq-agent: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
