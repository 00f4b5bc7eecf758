// The agent's decisions, pure: from its state and what a step read or did, the next state and the
// lines to log. agent.ts runs the steps (load, read, plan, apply) and writes what these say.
import { sameState, type Observed, type OwnedState, type Plan } from '../backends/backend.js';
import type { ShadowingRule } from '../backends/shadow-owner.js';
import type { MasqConfig } from '../config/config.js';
import { hashConfig, loggedLists } from '../config/key-values.js';
import type { LoadedConfig } from '../config/load.js';
import { CommandError, ConfigError, errorMessage } from '../errors.js';
import { cutExcerpt } from '../excerpt.js';
import { MAX_ERROR_BYTES, MAX_LOGGED_CIDRS, MAX_LOGGED_ISSUES } from '../limits.js';
import type { Family } from '../net/cidr.js';
import { describeDropped, normalizeRanges } from '../net/normalize.js';
import type { AgentStatus, FamilyStatus, SyncReport } from '../observe/agent-status.js';
import type { Fields } from '../observe/log.js';
import { describeRedundantRow, findRedundantRows, usesDecisions } from '../policy/decide.js';
import type { Policy } from '../policy/types.js';
import type { Retry } from './scheduler.js';

/** One line for the log, as data, so that decisions are tested without a logger. */
export type LogLine = { readonly level: 'error' | 'warn' | 'info' | 'debug'; readonly msg: string; readonly fields: Fields };

/** The agent's state, in one record: what the next decision starts from. */
export interface AgentState {
  /** The config in force: the last good one, or the defaults after an invalid first read. */
  readonly inForce?: LoadedConfig;
  /** Why the last config read was rejected; empty when it was valid. */
  readonly configErrors: readonly string[];
  /** Set from an invalid first read until a valid one: the families whose rules, found then, stay untouched. */
  readonly keptFromKernel?: readonly Family[] | undefined;
  /** What each family held after its last good sync, to tell drift from a config change. */
  readonly written: ReadonlyMap<Family, OwnedState>;
  readonly families: ReadonlyMap<Family, Readonly<FamilyStatus>>;
  readonly lastSyncAt?: number;
  readonly retryAfterMs?: number | undefined;
}

/** The state before the first sync. */
export const INITIAL_STATE: AgentState = { configErrors: [], written: new Map(), families: new Map() };

/** The state after a step and what to log about it. */
export type Decision = { readonly state: AgentState; readonly log: readonly LogLine[] };

/** What one family's sync reports. */
export type FamilyReport = SyncReport['families'][number];

const line = (level: LogLine['level'], msg: string, fields: Fields): LogLine => ({ level, msg, fields });
const SEE_ALL = { hint: 'run `ip-masq-agent validate` to see all' };

/** The first MAX_LOGGED_ISSUES items in full and one line counting the rest, so no list floods the log. */
function capped<T>(items: readonly T[], one: (item: T) => LogLine, rest: (count: number) => LogLine): LogLine[] {
  const shown = items.slice(0, MAX_LOGGED_ISSUES).map(one);
  return items.length > MAX_LOGGED_ISSUES ? [...shown, rest(items.length - MAX_LOGGED_ISSUES)] : shown;
}

/** The "config applied" line: it says "no config file" only when there is none. */
function appliedMessage(loaded: LoadedConfig): string {
  if (!loaded.usingDefaults) return 'config applied';
  return loaded.files.length === 0 ? 'config applied: defaults in use (no config file)' : 'config applied: defaults in use (the config sets no key)';
}

/** What the config read gave: the loaded config, or why it cannot be used. */
export type ConfigRead = { readonly loaded: LoadedConfig } | { readonly error: unknown };

/**
 * Which config is in force after a read: a valid one replaces it; an invalid one keeps the last
 * good one, or on a first start the defaults (and rules found in the kernel stay, see keepsFound).
 */
export function decideConfig(state: AgentState, read: ConfigRead, defaults: () => MasqConfig): Decision {
  if ('loaded' in read) {
    const { loaded } = read;
    // The files are read at every sync: their warnings are news only when the config or they changed.
    const was = state.configErrors.length === 0 ? state.inForce : undefined;
    const log =
      was?.hash === loaded.hash && JSON.stringify(was.warnings) === JSON.stringify(loaded.warnings)
        ? []
        : capped(
            loaded.warnings,
            (w) => line('warn', 'config warning', { source: w.source, path: w.path, line: w.line, message: w.message }),
            (count) => line('warn', 'more config warnings not shown', { count, total: loaded.warnings.length, ...SEE_ALL }),
          );
    if (was?.hash !== loaded.hash) {
      log.push(line('info', appliedMessage(loaded), { files: loaded.files, config: { ...loaded.config, ...loggedLists(loaded.config, MAX_LOGGED_CIDRS) } }));
    }
    return { state: { ...state, inForce: loaded, configErrors: [], keptFromKernel: undefined }, log };
  }
  const errors = read.error instanceof ConfigError ? read.error.message.split('\n') : [errorMessage(read.error)];
  const rejected = { ...state, configErrors: errors };
  if (state.inForce === undefined) {
    const config = defaults();
    return {
      state: { ...rejected, inForce: { config, hash: hashConfig(config), files: [], usingDefaults: true, warnings: [] }, keptFromKernel: [] },
      log: [line('error', 'config rejected on first start; rules of ours already in the kernel stay, else the built-in defaults apply, until it is fixed', { errors })],
    };
  }
  const news = errors.join('\n') !== state.configErrors.join('\n');
  return { state: rejected, log: news ? [line('error', 'config rejected; keeping the last good config and its rules', { errors })] : [] };
}

/**
 * Whether a family's sync rewrites our rules whole, so read() need not list them: the config
 * changed since its last good sync (at 50,000 CIDRs that listing costs about as much as the write).
 */
export function rewritesWhole(state: AgentState, family: Family, want: OwnedState): boolean {
  const prev = state.written.get(family);
  return prev !== undefined && state.keptFromKernel === undefined && !sameState(prev, want);
}

/**
 * Whether to leave what the kernel holds: the first config read failed, and rules of ours (a
 * previous run's, or the reference agent's) are there. They were made from a config that was good
 * then; the defaults are for a node with nothing yet. Decided at a family's first read that works.
 */
export function keepsFound(state: AgentState, family: Family, found: OwnedState | undefined): boolean {
  if (state.keptFromKernel === undefined) return false;
  return state.keptFromKernel.includes(family) || (!state.written.has(family) && (found?.length ?? 0) > 0);
}

/** What one family's sync did: kept what was found, applied the plan (unless up to date), or failed. */
export type FamilyOutcome =
  | { readonly kind: 'kept'; readonly found: OwnedState }
  | { readonly kind: 'planned'; readonly want: OwnedState; readonly observed: Observed; readonly plan: Plan }
  | { readonly kind: 'failed'; readonly error: unknown; readonly plan: Plan | undefined };

/** One family's sync, from its start to its end. */
export type FamilyStep = { readonly family: Family; readonly backend: string; readonly startedAt: number; readonly endedAt: number; readonly outcome: FamilyOutcome };

const NEW_FAMILY: FamilyStatus = { lastAttemptAt: undefined, lastSuccessAt: undefined, lastError: undefined, consecutiveFailures: 0, rules: 0, driftRepairs: 0, shadowingRules: [] };

const withFamily = (state: AgentState, family: Family, status: FamilyStatus): AgentState => ({ ...state, families: new Map(state.families).set(family, status) });

/** A family's sync begins: health sees the attempt while it runs. */
export function noteAttempt(state: AgentState, family: Family, at: number): AgentState {
  return withFamily(state, family, { ...(state.families.get(family) ?? NEW_FAMILY), lastAttemptAt: at });
}

/** The state, log lines and report after one family's sync. */
export function decideFamily(state: AgentState, s: FamilyStep): Decision & { readonly report: FamilyReport } {
  const { family, backend, outcome: o } = s;
  const was = state.families.get(family) ?? NEW_FAMILY;
  const durationMs = s.endedAt - s.startedAt;
  // Where the status gets what shadows our rules: the plan's list, checked at every sync (another
  // program may insert such a rule at any time), warned about when it changes to something.
  const shadowing = o.kind === 'kept' ? undefined : o.plan?.shadowing;
  const log: LogLine[] = [];
  const listed = (rules: readonly ShadowingRule[]): string => rules.map((r) => `${r.owner}: ${r.rule}`).join('\n');
  if (shadowing?.length && listed(shadowing) !== listed(was.shadowingRules ?? [])) {
    const [rules, owners] = [shadowing.map((r) => r.rule), [...new Set(shadowing.map((r) => r.owner))]];
    log.push(line('warn', 'rules earlier in nat POSTROUTING masquerade or SNAT before our jump, so they may override our non-masquerade ranges', { family, owners, rules }));
  }
  const attempt = { ...was, lastAttemptAt: s.startedAt, shadowingRules: shadowing ?? was.shadowingRules ?? [] };
  if (o.kind === 'failed') {
    const error = cutExcerpt(errorMessage(o.error), MAX_ERROR_BYTES);
    const why = o.error instanceof CommandError ? { failure: o.error.failure, exitCode: o.error.exitCode } : {};
    if (was.lastError !== error) log.push(line('error', 'sync failed; the rules in place stay; retrying soon, with backoff', { family, backend, error, ...why }));
    const status = { ...attempt, lastError: error, consecutiveFailures: was.consecutiveFailures + 1, failingSince: was.failingSince ?? s.startedAt };
    return { state: withFamily(state, family, status), log, report: { family, result: 'error', durationMs, rules: was.rules, error } };
  }
  const rules = o.kind === 'kept' ? o.found : o.want;
  const found = o.kind === 'kept' ? undefined : o.observed.owned;
  // Drift: what the agent wrote last is still what it wants, yet the kernel held something else.
  const result = o.kind === 'kept' || o.plan.upToDate ? 'unchanged' : found !== undefined && sameState(state.written.get(family), rules) ? 'repaired' : 'applied';
  const said = { family, backend, rules: rules.length };
  let keptFromKernel = state.keptFromKernel;
  if (o.kind === 'kept' && !keptFromKernel?.includes(family)) {
    keptFromKernel = [...(keptFromKernel ?? []), family];
    log.push(line('warn', 'config invalid at start; keeping the rules found in the kernel until a valid config is read', said));
  }
  if (o.kind === 'planned' && result === 'unchanged' && !state.written.has(family)) log.push(line('info', 'rules already in place', said));
  if (result === 'repaired') log.push(line('warn', 'rules drifted from what the agent wrote; restored them', { family, backend, found: found?.length, restored: rules.length }));
  if (result === 'applied') log.push(line('info', 'rules applied', { ...said, rules: rules.length > 200 ? `${rules.length} lines` : rules }));
  if (was.consecutiveFailures > 0) log.push(line('info', 'sync recovered', { family, after: was.consecutiveFailures }));
  const driftRepairs = was.driftRepairs + (result === 'repaired' ? 1 : 0);
  const status = { ...attempt, lastSuccessAt: s.endedAt, lastError: undefined, consecutiveFailures: 0, failingSince: undefined, rules: rules.length, driftRepairs };
  const next = { ...withFamily(state, family, status), keptFromKernel, written: new Map(state.written).set(family, rules) };
  return { state: next, log, report: { family, result, durationMs, rules: rules.length } };
}

/** The end of a sync: its report is the state's, and a "sync done" line says what it did and when the retry comes. */
export function decideSyncEnd(state: AgentState, report: SyncReport, retry: Retry | undefined): Decision {
  const retrying = retry === undefined ? {} : { retryInMs: retry.afterMs, failedSyncs: retry.failures };
  const done = line('debug', 'sync done', { reason: report.reason, families: report.families.map((r) => `${r.family}:${r.result}`), ...retrying });
  return { state: { ...state, lastSyncAt: report.at, retryAfterMs: report.retryAfterMs }, log: [done] };
}

/** Warnings about ranges of a new config that change nothing (the nft sets drop them; iptables keeps order). */
export function redundancyWarnings(policy: Policy): LogLine[] {
  return policy.families.flatMap((fp) => {
    const [what, more, details] = usesDecisions(fp)
      ? ['redundant CIDR', 'more redundant CIDRs not shown', findRedundantRows(fp).map((r) => describeRedundantRow(r))]
      : ['redundant non-masquerade range', 'more redundant non-masquerade ranges not shown', normalizeRanges(fp.exempt).dropped.map((d) => describeDropped(d))];
    return capped(
      details,
      (detail) => line('warn', what, { family: fp.family, detail }),
      (count) => line('warn', more, { family: fp.family, count, ...SEE_ALL }),
    );
  });
}

/** What status() shows of a state. */
export function statusOf(s: AgentState): AgentStatus {
  const { configErrors, families, lastSyncAt, retryAfterMs } = s;
  const c = s.inForce;
  const kept = s.keptFromKernel?.length ? { rulesKeptFromKernel: s.keptFromKernel } : {};
  const config = { usingDefaults: c?.usingDefaults ?? false, configHash: c?.hash ?? '', configFiles: c?.files ?? [], resyncIntervalMs: c?.config.resyncIntervalMs ?? 60_000 };
  return { configValid: configErrors.length === 0, configErrors, ...config, ...kept, lastSyncAt, retryAfterMs, families };
}
