import type { Backend, OwnedState, Plan } from '../backends/backend.js';
import type { MasqConfig } from '../config/config.js';
import type { LoadedConfig } from '../config/load.js';
import type { Family } from '../net/cidr.js';
import type { AgentStatus, SyncReport } from '../observe/agent-status.js';
import type { Logger } from '../observe/log.js';
import { buildPolicy, type PolicyOptions } from '../policy/build.js';
import type { FamilyPolicy, Policy } from '../policy/types.js';
import type { Clock } from './clock.js';
import * as decide from './decide.js';
import { createScheduler, type Scheduler, type Settle } from './scheduler.js';

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
  /**
   * Called once after the first sync of each new config: parsing and rendering a large config
   * leave tens of MiB of garbage that V8 would otherwise keep until its heap cap forces a collection.
   */
  readonly afterConfigChange?: () => void;
  /**
   * Called after a family's rules changed from one config's policy to another's, with both: flows
   * already open keep the translation of their first packet, so this deletes the stale ones (main
   * binds it to conntrack). It logs its own failures; a rejection is logged here and fails nothing.
   */
  readonly afterRulesChange?: (old: FamilyPolicy, next: FamilyPolicy) => Promise<void>;
}

/** The running agent: its syncs (config and rules) run by a scheduler at the config's resyncInterval; stop() leaves the rules in place. */
export interface Agent extends Scheduler<SyncReport> {
  status(): AgentStatus;
  /** The policy of the config in force, once a sync has built it (for the counters read at scrape time). */
  policy(): Policy | undefined;
}

/** The policy of one config (by hash), and what each family expects of it: built once per config. */
type Built = { readonly hash: string; readonly policy: Policy; readonly expected: Map<Family, OwnedState> };

/** Creates the agent: one sync (load, then per family read, plan, apply, decide), run by a scheduler. */
export function createAgent(deps: AgentDeps): Agent {
  const { backend, log, clock } = deps;
  let state = decide.INITIAL_STATE;
  let built: Built | undefined;
  // Per family, the config (by hash) whose policy the kernel's rules were last written or found up to date for.
  const inKernel = new Map<Family, { readonly hash: string; readonly policy: FamilyPolicy }>();
  const write = (lines: readonly decide.LogLine[]): void => lines.forEach((l) => log[l.level](l.msg, l.fields));
  const commit = (d: decide.Decision): void => {
    state = d.state;
    write(d.log);
  };

  /** One family's sync; a change of the policy its rules hold goes to `changed`, for afterRulesChange. */
  async function syncFamily(b: Built, policy: FamilyPolicy, changed: [FamilyPolicy, FamilyPolicy][]): Promise<decide.FamilyReport> {
    const family = policy.family;
    const startedAt = clock.now();
    state = decide.noteAttempt(state, family, startedAt);
    let outcome: decide.FamilyOutcome;
    let plan: Plan | undefined;
    try {
      // Inside the try: whatever rendering or reading throws is a failed sync that keeps the rules
      // in force, never a crash.
      const want = b.expected.get(family) ?? backend.expected(policy);
      b.expected.set(family, want);
      const observed = await backend.read(family, decide.rewritesWhole(state, family, want) ? { owned: false } : {});
      if (decide.keepsFound(state, family, observed.owned)) outcome = { kind: 'kept', found: observed.owned ?? [] };
      else {
        plan = backend.plan(observed, policy);
        if (!plan.upToDate) await backend.apply(plan);
        outcome = { kind: 'planned', want, observed, plan };
      }
    } catch (error) {
      outcome = { kind: 'failed', error, plan };
    }
    // Decided on the state as it is now: the other family may have committed meanwhile.
    const d = decide.decideFamily(state, { family, backend: backend.name, startedAt, endedAt: clock.now(), outcome });
    commit(d);
    if (outcome.kind === 'planned') {
      const was = inKernel.get(family);
      inKernel.set(family, { hash: b.hash, policy });
      if (was !== undefined && was.hash !== b.hash) changed.push([was.policy, policy]);
    }
    return d.report;
  }

  async function syncOnce(reason: string, settle: Settle): Promise<SyncReport> {
    const before = state.inForce?.hash;
    const read: decide.ConfigRead = await deps.loadConfig().then(
      (loaded) => ({ loaded }),
      (error: unknown) => ({ error }),
    );
    commit(decide.decideConfig(state, read, deps.defaultConfig));
    const inForce = state.inForce ?? { config: deps.defaultConfig(), hash: '' };
    if (built?.hash !== inForce.hash) built = { hash: inForce.hash, policy: buildPolicy(inForce.config, deps.policyOptions), expected: new Map() };
    const b = built;
    // Families are independent: one failing never stops the other.
    const changed: [FamilyPolicy, FamilyPolicy][] = [];
    const families = await Promise.all(b.policy.families.map((p) => syncFamily(b, p, changed)));
    const retry = settle(families.some((r) => r.result === 'error'));
    const report: SyncReport = { reason, at: clock.now(), configValid: 'loaded' in read, families, retryAfterMs: retry?.afterMs };
    commit(decide.decideSyncEnd(state, report, retry));
    deps.onSync?.(report);
    // After the report too: the rules are in force; this only moves open flows onto them.
    for (const [old, next] of changed) {
      await deps.afterRulesChange?.(old, next).catch((e: unknown) => log.warn('after the rules changed: failed', { family: next.family, error: String(e) }));
    }
    // After the sync is reported, not before: the rules are in force, these are only log lines
    // (tens of ms at 50,000 CIDRs) and a collection (as long again), still within this sync.
    if (inForce.hash !== before) {
      write(decide.redundancyWarnings(b.policy));
      deps.afterConfigChange?.();
    }
    return report;
  }

  const intervalMs = (): number => state.inForce?.config.resyncIntervalMs ?? 60_000;
  return { ...createScheduler({ clock, run: syncOnce, intervalMs }), status: () => decide.statusOf(state), policy: () => built?.policy };
}
