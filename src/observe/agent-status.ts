// What the agent reports about itself: the per-sync report and the status snapshot. They live
// below the agent because health, metrics and the HTTP routes read them and must not import it.
import type { Family } from '../net/cidr.js';
import type { ShadowingRule } from '../backends/shadow-owner.js';

/** The reason of a sync run early because the previous one failed (what metrics count as a retry). */
export const RETRY_REASON = 'retry';

/** Every outcome a family can have in one sync. */
export const FAMILY_RESULTS = ['unchanged', 'applied', 'repaired', 'error'] as const;

/** The outcome of one family in one sync. */
export type FamilyResult = (typeof FAMILY_RESULTS)[number];

/** What one sync did. */
export interface SyncReport {
  readonly reason: string;
  readonly at: number;
  readonly configValid: boolean;
  readonly families: readonly { family: Family; result: FamilyResult; durationMs: number; rules: number; error?: string }[];
  /** When some family failed: the delay before the retry (backoff); undefined when the next sync is the regular resync. */
  readonly retryAfterMs?: number | undefined;
}

/** Per-family health, as /healthz, /readyz and metrics report it. */
export interface FamilyStatus {
  lastAttemptAt: number | undefined;
  lastSuccessAt: number | undefined;
  lastError: string | undefined;
  consecutiveFailures: number;
  /** When the current run of failures began (undefined while syncs succeed), so health can tell retries from time. */
  failingSince?: number | undefined;
  rules: number;
  driftRepairs: number;
  /** Others' MASQUERADE/SNAT rules that decide before ours, with their owners: the last plan's `shadowing` (Plan.shadowing). */
  shadowingRules?: readonly ShadowingRule[];
}

/** A snapshot of the agent's state. */
export interface AgentStatus {
  readonly configValid: boolean;
  readonly configErrors: readonly string[];
  readonly usingDefaults: boolean;
  readonly configHash: string;
  readonly configFiles: readonly string[];
  /** Families whose rules, found in the kernel when the first config read failed, are kept as they were. */
  readonly rulesKeptFromKernel?: readonly Family[];
  readonly resyncIntervalMs: number;
  readonly lastSyncAt: number | undefined;
  /** The pending retry delay after a failed sync (backoff); undefined when the regular resync is next. */
  readonly retryAfterMs?: number | undefined;
  readonly families: ReadonlyMap<Family, Readonly<FamilyStatus>>;
}
