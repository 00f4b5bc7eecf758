import type { Backend, OwnedState, Plan } from '../backends/backend.js';
import type { MasqConfig } from '../config/config.js';
import type { LoadedConfig } from '../config/load.js';
import type { Family } from '../net/cidr.js';
import type { AgentStatus, SyncReport } from '../observe/agent-status.js';
import type { Logger } from '../observe/log.js';
import { buildPolicy, type PolicyOptions } from '../policy/build.js';
import type { FamilyPolicy, Policy } from '../policy/types.js';
import type { Clock } from './clock.js';
import { decideConfig, decideFamily, decideSyncEnd, INITIAL_STATE, keepsFound, noteAttempt, rewritesWhole, statusOf, type ConfigRead, type Decision, type FamilyOutcome, type FamilyReport, type LogLine } from './decide.js';
import { createScheduler, type Settle } from './scheduler.js';

export { RETRY_INITIAL_MS, retryDelayMs } from './scheduler.js';

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

/** The policy of one config, built once per config (by hash), with what each family expects of it. */
interface Built {
  readonly hash: string;
  readonly policy: Policy;
  readonly expected: Map<Family, OwnedState>;
}

/** Creates the agent: one sync (load, read, plan, decide, apply), run by a scheduler. */
export function createAgent(deps: AgentDeps): Agent {
  const { backend, log, clock } = deps;
  let state = INITIAL_STATE;
  let built: Built | undefined;
  const write = (lines: readonly LogLine[]): void => lines.forEach((l) => log[l.level](l.msg, l.fields));
  const commit = (d: Decision): void => {
    state = d.state;
    write(d.log);
  };

  /** One family: read, plan, apply when the kernel differs; the decision is taken on what happened. */
  async function syncFamily(b: Built, policy: FamilyPolicy): Promise<FamilyReport> {
    const family = policy.family;
    const startedAt = clock.now();
    state = noteAttempt(state, family, startedAt);
    let outcome: FamilyOutcome;
    let plan: Plan | undefined;
    try {
      // Inside the try: a backend may refuse a policy (a SNAT address of the other family), and
      // that is a failed sync that keeps the rules in force, never a crash.
      const want = b.expected.get(family) ?? backend.expected(policy);
      b.expected.set(family, want);
      const observed = await backend.read(family, rewritesWhole(state, family, want) ? { owned: false } : {});
      if (keepsFound(state, family, observed.owned)) outcome = { kind: 'kept', found: observed.owned ?? [] };
      else {
        plan = backend.plan(observed, policy);
        if (!plan.upToDate) await backend.apply(plan);
        outcome = { kind: 'planned', want, observed, plan };
      }
    } catch (error) {
      outcome = { kind: 'failed', error, plan };
    }
    const d = decideFamily(state, { family, backend: backend.name, startedAt, endedAt: clock.now(), outcome });
    commit(d);
    return d.report;
  }

  async function syncOnce(reason: string, settle: Settle): Promise<SyncReport> {
    let read: ConfigRead;
    try {
      read = { loaded: await deps.loadConfig() };
    } catch (error) {
      read = { error };
    }
    commit(decideConfig(state, read, deps.defaultConfig));
    if (built?.hash !== state.configHash) {
      built = { hash: state.configHash, policy: buildPolicy(state.config ?? deps.defaultConfig(), deps.policyOptions), expected: new Map() };
    }
    const b = built;
    // Families are independent: one failing never stops the other.
    const families = await Promise.all(b.policy.families.map((p) => syncFamily(b, p)));
    const retry = settle(families.some((r) => r.result === 'error'));
    const end = decideSyncEnd(state, { reason, at: clock.now(), configValid: 'loaded' in read, families, retry, policy: b.policy });
    commit(end);
    deps.onSync?.(end.report);
    // After the sync is reported, not before: the rules are in force, these are only log lines
    // (tens of ms at 50,000 CIDRs) and a collection (as long again), still within this sync.
    if (end.news) {
      write(end.news);
      deps.afterConfigChange?.();
    }
    return end.report;
  }

  const scheduler = createScheduler({ clock, run: syncOnce, intervalMs: () => state.config?.resyncIntervalMs ?? 60_000, retryInitialMs: deps.retryInitialMs });
  return { sync: scheduler.trigger, start: scheduler.start, stop: scheduler.stop, status: () => statusOf(state) };
}
