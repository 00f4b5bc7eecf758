import type { Backend, Observed, OwnedState } from '../backends/backend.js';
import type { MasqConfig } from '../config/config.js';
import { hashConfig, loggedLists } from '../config/key-values.js';
import type { LoadedConfig } from '../config/load.js';
import { ConfigError, CommandError } from '../errors.js';
import type { Family } from '../net/cidr.js';
import type { Logger } from '../observe/log.js';
import { buildPolicy, type PolicyOptions } from '../policy/build.js';
import type { Policy } from '../policy/types.js';
import { describeRedundantRow, findRedundantRows, usesDecisions } from '../policy/decide.js';
import { describeDropped, normalizeRanges } from '../net/normalize.js';
import { cutExcerpt } from '../excerpt.js';
import type { Clock } from './clock.js';
import { createHash } from 'node:crypto';
import type { ConfigIssue } from '../errors.js';
import { MAX_ERROR_BYTES, MAX_LOGGED_CIDRS, MAX_LOGGED_ISSUES } from '../limits.js';
import { RETRY_REASON, type AgentStatus, type FamilyResult, type FamilyStatus, type SyncReport } from '../observe/agent-status.js';

/** What the agent needs from the world; `main` builds the real ones, tests build fakes. */
export interface AgentDeps {
  /** Reads and validates the config; throws ConfigError when it cannot be used. */
  readonly loadConfig: () => Promise<LoadedConfig>;
  /** The built-in defaults, used when the very first config read is invalid. */
  readonly defaultConfig: () => MasqConfig;
  readonly backend: Backend;
  readonly policyOptions: PolicyOptions;
  readonly log: Logger;
  readonly clock: Clock;
  /** Called after every sync with what happened, e.g. to update metrics. */
  readonly onSync?: (report: SyncReport) => void;
  /** The first retry delay after a failed sync, doubled per failure up to resyncInterval. Default RETRY_INITIAL_MS. */
  readonly retryInitialMs?: number;
  /**
   * Called once after the first sync of each new config: parsing and rendering a large config
   * leave tens of MiB of garbage that V8 would otherwise keep until its heap cap forces a collection.
   */
  readonly afterConfigChange?: () => void;
}

/** The first retry after a failed sync comes this soon; each further failure doubles it, up to resyncInterval. */
export const RETRY_INITIAL_MS = 1000;

/** The running agent. */
export interface Agent {
  /** Syncs now (config and rules); concurrent calls coalesce into at most one more run. */
  sync(reason: string): Promise<SyncReport>;
  /** First sync, then every resyncInterval of the config in force. */
  start(): Promise<SyncReport>;
  /** Stops the timer; rules stay in place. Waits for a running sync. */
  stop(): Promise<void>;
  status(): AgentStatus;
}

function sameLines(a: OwnedState, b: OwnedState): boolean {
  return a === b || (a.length === b.length && a.every((l, i) => l === b[i]));
}

function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Logs the first MAX_LOGGED_ISSUES items in full and one line counting the rest, so no list floods the log. */
function logCapped<T>(items: readonly T[], logOne: (item: T) => void, logRest: (count: number) => void): void {
  for (let i = 0; i < items.length && i < MAX_LOGGED_ISSUES; i++) logOne(items[i]!);
  if (items.length > MAX_LOGGED_ISSUES) logRest(items.length - MAX_LOGGED_ISSUES);
}

/** Identifies a config and its warnings, so the same ones are logged once, not at every resync. */
function warningsFingerprint(configHash: string, warnings: readonly ConfigIssue[]): string {
  const h = createHash('sha256').update(configHash);
  for (const w of warnings) h.update(`\n${w.source}\0${w.line ?? ''}\0${w.column ?? ''}\0${w.path}\0${w.message}`);
  return h.digest('hex');
}

/** The "config applied" line: it says "no config file" only when there is none. */
function appliedMessage(loaded: LoadedConfig): string {
  if (!loaded.usingDefaults) return 'config applied';
  return loaded.files.length === 0 ? 'config applied: defaults in use (no config file)' : 'config applied: defaults in use (the config sets no key)';
}

/**
 * The delay before retry number `failures` (1, 2, ...): initial, doubled each time, never past
 * the resync interval, as kube-proxy's BoundedFrequencyRunner retries a failed sync.
 */
export function retryDelayMs(failures: number, initialMs: number, resyncIntervalMs: number): number {
  return Math.min(initialMs * 2 ** Math.min(Math.max(failures - 1, 0), 30), resyncIntervalMs);
}

/** Creates the agent: one single-flight sync, triggered by start, the timer, and callers. */
export function createAgent(deps: AgentDeps): Agent {
  const { backend, log, clock } = deps;
  let config: MasqConfig | undefined;
  let configHash = '';
  let configFiles: readonly string[] = [];
  let usingDefaults = false;
  let configErrors: readonly string[] = [];
  let lastErrorText = '';
  let lastSyncAt: number | undefined;
  let redundancyReported = '';
  let warningsLogged = '';
  /** True from a failed first config read until a valid config loads: what is in the kernel is the best guess. */
  let startInvalid = false;
  /** Families whose rules found at start stay untouched while startInvalid. */
  const keptFromKernel = new Set<Family>();
  const families = new Map<Family, FamilyStatus>();
  /** The expected state each family was last written to, to tell drift from a config change. */
  const written = new Map<Family, OwnedState>();
  let inflight: Promise<SyncReport> | undefined;
  let queued: Promise<SyncReport> | undefined;
  let cancelTimer: (() => void) | undefined;
  let running = false;
  /** Syncs in a row with some family in error; drives the retry backoff. */
  let failedSyncs = 0;
  let retryAfterMs: number | undefined;
  const retryInitialMs = deps.retryInitialMs ?? RETRY_INITIAL_MS;
  /**
   * The policy of the config in force, built once per config: the loader hands back the same
   * config object while the files are unchanged, so a quiet resync builds and renders nothing.
   */
  let built: { readonly config: MasqConfig; readonly policy: Policy } | undefined;
  /** What the backend expects per family policy (pure), rendered once per policy. */
  const expectedOf = new WeakMap<Policy['families'][number], OwnedState>();
  let lastLoaded: LoadedConfig | undefined;

  const familyStatus = (f: Family): FamilyStatus => {
    let s = families.get(f);
    if (!s) {
      s = { lastAttemptAt: undefined, lastSuccessAt: undefined, lastError: undefined, consecutiveFailures: 0, rules: 0, driftRepairs: 0, shadowingRules: [] };
      families.set(f, s);
    }
    return s;
  };

  async function refreshConfig(): Promise<boolean> {
    try {
      const loaded = await deps.loadConfig();
      const hash = loaded.hash;
      // The loader reads the file at every sync; its warnings are news only when the config changed.
      const same = loaded === lastLoaded && warningsLogged !== '';
      lastLoaded = loaded;
      const fingerprint = same ? warningsLogged : warningsFingerprint(hash, loaded.warnings);
      if (fingerprint !== warningsLogged) {
        warningsLogged = fingerprint;
        logCapped(
          loaded.warnings,
          (w) => log.warn('config warning', { source: w.source, path: w.path, line: w.line, message: w.message }),
          (count) => log.warn('more config warnings not shown', { count, total: loaded.warnings.length, hint: 'run `ip-masq-agent validate` to see all' }),
        );
      }
      if (hash !== configHash || configErrors.length > 0) {
        log.info(appliedMessage(loaded), {
          files: loaded.files,
          config: { ...loaded.config, ...loggedLists(loaded.config, MAX_LOGGED_CIDRS) },
        });
      }
      config = loaded.config;
      configHash = hash;
      configFiles = loaded.files;
      usingDefaults = loaded.usingDefaults;
      configErrors = [];
      lastErrorText = '';
      startInvalid = false;
      keptFromKernel.clear();
      return true;
    } catch (e) {
      const issues = e instanceof ConfigError ? e.message.split('\n') : [describeError(e)];
      warningsLogged = '';
      const text = issues.join('\n');
      configErrors = issues;
      if (config === undefined) {
        config = deps.defaultConfig();
        configHash = hashConfig(config);
        configFiles = [];
        usingDefaults = true;
        startInvalid = true;
        log.error('config rejected on first start; rules of ours already in the kernel stay, else the built-in defaults apply, until it is fixed', { errors: issues });
      } else if (text !== lastErrorText) {
        log.error('config rejected; keeping the last good config and its rules', { errors: issues });
      }
      lastErrorText = text;
      return false;
    }
  }

  /** Keeps what the plan says shadows our rules; warns when that changes to something. */
  function noteShadowing(f: Family, st: FamilyStatus, found: readonly string[]): void {
    if (found.join('\n') !== (st.shadowingRules ?? []).join('\n') && found.length > 0) {
      log.warn('rules earlier in nat POSTROUTING masquerade or SNAT before our jump, so they may override our non-masquerade ranges', { family: f, rules: found });
    }
    st.shadowingRules = found;
  }

  /**
   * Whether to leave `have` as it is: the first config read failed, and rules of ours (a previous
   * run's, or the reference agent's) are in the kernel. They were made from a config that was good
   * then; the defaults are for a node with nothing yet. Decided at a family's first read.
   */
  function keepFoundRules(f: Family, have: OwnedState): boolean {
    if (!startInvalid) return false;
    if (keptFromKernel.has(f)) return true;
    if (written.has(f) || have.length === 0) return false;
    keptFromKernel.add(f);
    log.warn('config invalid at start; keeping the rules found in the kernel until a valid config is read', { family: f, backend: backend.name, rules: have.length });
    return true;
  }

  /** Applies what the backend plans from `observed`; says whether that was a first apply, a config change or drift. */
  async function reconcile(policy: Policy['families'][number], observed: Observed, want: OwnedState, prev: OwnedState | undefined): Promise<FamilyResult> {
    const f = policy.family;
    const plan = backend.plan(observed, policy);
    noteShadowing(f, familyStatus(f), plan.shadowing);
    if (plan.upToDate) {
      if (!written.has(f)) log.info('rules already in place', { family: f, backend: backend.name, rules: want.length });
      return 'unchanged';
    }
    await backend.apply(plan);
    if (observed.owned !== undefined && prev && sameLines(prev, want)) {
      familyStatus(f).driftRepairs++;
      log.warn('rules drifted from what the agent wrote; restored them', { family: f, backend: backend.name, found: observed.owned.length, restored: want.length });
      return 'repaired';
    }
    log.info('rules applied', { family: f, backend: backend.name, rules: want.length > 200 ? `${want.length} lines` : want });
    return 'applied';
  }

  async function syncFamily(policy: ReturnType<typeof buildPolicy>['families'][number]): Promise<SyncReport['families'][number]> {
    const f = policy.family;
    const st = familyStatus(f);
    const started = clock.now();
    st.lastAttemptAt = started;
    try {
      // Inside the try: a backend may refuse a policy (a SNAT address of the other family), and
      // that is a failed sync that keeps the rules in force, never a crash.
      const prev = written.get(f);
      let want: readonly string[] = expectedOf.get(policy) ?? backend.expected(policy);
      expectedOf.set(policy, want);
      // A config change since this family's last good sync rewrites our rules whole: listing them
      // first would only say "differs", and at 50,000 CIDRs costs about as much as the write.
      const configChanged = prev !== undefined && !startInvalid && !sameLines(prev, want);
      const observed = await backend.read(f, configChanged ? { owned: false } : {});
      let result: FamilyResult = 'unchanged';
      if (!configChanged && keepFoundRules(f, observed.owned ?? [])) want = observed.owned ?? [];
      else result = await reconcile(policy, observed, want, prev);
      written.set(f, want);
      if (st.consecutiveFailures > 0) log.info('sync recovered', { family: f, after: st.consecutiveFailures });
      st.lastSuccessAt = clock.now();
      st.lastError = undefined;
      st.consecutiveFailures = 0;
      st.failingSince = undefined;
      st.rules = want.length;
      return { family: f, result, durationMs: clock.now() - started, rules: want.length };
    } catch (e) {
      const msg = cutExcerpt(describeError(e), MAX_ERROR_BYTES);
      if (st.lastError !== msg) {
        log.error('sync failed; the rules in place stay; retrying soon, with backoff', {
          family: f,
          backend: backend.name,
          error: msg,
          ...(e instanceof CommandError ? { failure: e.failure, exitCode: e.exitCode } : {}),
        });
      }
      st.lastError = msg;
      st.consecutiveFailures++;
      st.failingSince ??= started;
      return { family: f, result: 'error', durationMs: clock.now() - started, rules: st.rules, error: msg };
    }
  }

  /** Warns once per config about ranges that change nothing (the nft sets drop them; iptables keeps order). */
  function reportRedundancies(policy: Policy): void {
    for (const fp of policy.families) {
      if (usesDecisions(fp)) {
        logCapped(
          findRedundantRows(fp),
          (r) => log.warn('redundant CIDR', { family: fp.family, detail: describeRedundantRow(r) }),
          (count) => log.warn('more redundant CIDRs not shown', { family: fp.family, count, hint: 'run `ip-masq-agent validate` to see all' }),
        );
        continue;
      }
      logCapped(
        normalizeRanges(fp.exempt).dropped,
        (d) => log.warn('redundant non-masquerade range', { family: fp.family, detail: describeDropped(d) }),
        (count) => log.warn('more redundant non-masquerade ranges not shown', { family: fp.family, count, hint: 'run `ip-masq-agent validate` to see all' }),
      );
    }
  }

  async function syncOnce(reason: string): Promise<SyncReport> {
    const configValid = await refreshConfig();
    const inForce = config ?? deps.defaultConfig();
    if (built?.config !== inForce) built = { config: inForce, policy: buildPolicy(inForce, deps.policyOptions) };
    const policy = built.policy;
    // Families are independent: one failing never stops the other.
    const results = await Promise.all(policy.families.map((p) => syncFamily(p)));
    lastSyncAt = clock.now();
    if (results.some((r) => r.result === 'error')) {
      failedSyncs++;
      retryAfterMs = retryDelayMs(failedSyncs, retryInitialMs, config?.resyncIntervalMs ?? 60_000);
    } else {
      failedSyncs = 0;
      retryAfterMs = undefined;
    }
    const report: SyncReport = { reason, at: lastSyncAt, configValid, families: results, retryAfterMs };
    log.debug('sync done', {
      reason,
      families: results.map((r) => `${r.family}:${r.result}`),
      ...(retryAfterMs === undefined ? {} : { retryInMs: retryAfterMs, failedSyncs }),
    });
    deps.onSync?.(report);
    // After the sync is reported, not before: the rules are in force, these are only log lines
    // (tens of ms at 50,000 CIDRs) and a collection (as long again), still within this sync.
    if (configHash !== redundancyReported) {
      redundancyReported = configHash;
      reportRedundancies(policy);
      deps.afterConfigChange?.();
    }
    return report;
  }

  function arm(): void {
    cancelTimer?.();
    if (!running) return;
    // After a failure the next sync comes sooner (backoff), not a whole resync later.
    if (retryAfterMs !== undefined) cancelTimer = clock.setTimer(retryAfterMs, () => void sync(RETRY_REASON));
    else cancelTimer = clock.setTimer(config?.resyncIntervalMs ?? 60_000, () => void sync('resync'));
  }

  function run(reason: string): Promise<SyncReport> {
    const p: Promise<SyncReport> = syncOnce(reason).finally(() => {
      if (inflight === p) inflight = undefined;
      arm();
    });
    inflight = p;
    return p;
  }

  function sync(reason: string): Promise<SyncReport> {
    if (!inflight) return run(reason);
    // One run at a time; every trigger during a run folds into a single run after it.
    queued ??= inflight
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return run(reason);
      });
    return queued;
  }

  return {
    sync,
    start: () => {
      running = true;
      return sync('start');
    },
    stop: async () => {
      running = false;
      cancelTimer?.();
      cancelTimer = undefined;
      await inflight?.catch(() => undefined);
    },
    status: () => ({
      configValid: configErrors.length === 0,
      configErrors,
      usingDefaults,
      configHash,
      configFiles,
      ...(keptFromKernel.size > 0 ? { rulesKeptFromKernel: [...keptFromKernel] } : {}),
      resyncIntervalMs: config?.resyncIntervalMs ?? 60_000,
      lastSyncAt,
      retryAfterMs,
      families,
    }),
  };
}
