import type { AgentStatus, FamilyStatus } from './agent-status.js';
import { MAX_ERROR_BYTES, MAX_LOGGED_ISSUES } from '../limits.js';
import { formatGoDuration } from '../config/duration.js';
import { cutExcerpt } from '../excerpt.js';

// Liveness and readiness, decided from a status snapshot and the current time, nothing else.
// healthy (/healthz, for a livenessProbe), modelled on kube-proxy's healthz ("unhealthy when
// updates are overdue"):
//   - the sync loop is alive: its latest sync attempt (any family, or the end of a sync) is at most
//     max(2 x resyncInterval, 2m) old; before the first attempt the agent counts as healthy
//     (starting), unless that window has passed since `startedAt` (a first sync that hangs);
//   - no family has failed 5 syncs in a row: repeated failures turn the probe red so that someone
//     (or the kubelet) notices, but the agent itself never exits for them. A failed sync is retried
//     within seconds (backoff), so the count alone would turn red after ~15 s; the failures must
//     also span 4 resync intervals, as many resyncs as the count would have taken without retries.
// ready (/readyz, for a readinessProbe and rollouts): at least one sync has run, and every family
// the agent syncs has succeeded, most recently at most max(3 x resyncInterval, 3m) ago.
// The body is bounded: errors are cut at MAX_ERROR_BYTES and at most MAX_LOGGED_ISSUES config
// errors are listed, whatever a tool printed or a config contained.
// An invalid config makes the agent neither unhealthy nor unready: the last good config and its
// rules stay in force and are still re-applied, so restarting the pod would fix nothing and would
// turn one bad edit into a crash loop on every node. It is reported in the body, in the logs and
// in the ip_masq_agent_config_valid metric instead, where alerts belong.

/** Failed syncs in a row that turn /healthz red (when they also span FAILURES - 1 resync intervals). */
const FAILURES = 5;

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

/** Whole seconds in Go syntax (`1m35s`): what a person reads in a probe failure. */
function seconds(ms: number): string {
  return formatGoDuration(BigInt(Math.round(ms / 1000)) * 1_000_000_000n);
}

function bounded(text: string): string {
  return cutExcerpt(text, MAX_ERROR_BYTES);
}

function boundedList(items: readonly string[]): string[] {
  const shown = items.slice(0, MAX_LOGGED_ISSUES).map(bounded);
  if (items.length > MAX_LOGGED_ISSUES) shown.push(`... and ${items.length - MAX_LOGGED_ISSUES} more`);
  return shown;
}

/** One family in the body; times are ISO 8601, `null` when it never happened. */
function familyBody(s: Readonly<FamilyStatus>) {
  return {
    lastAttempt: iso(s.lastAttemptAt),
    lastSuccess: iso(s.lastSuccessAt),
    lastError: s.lastError === undefined ? null : bounded(s.lastError),
    consecutiveFailures: s.consecutiveFailures,
    rules: s.rules,
    driftRepairs: s.driftRepairs,
  };
}

function latest(values: readonly (number | undefined)[]): number | undefined {
  const known = values.filter((v) => v !== undefined);
  return known.length === 0 ? undefined : Math.max(...known);
}

/**
 * Decides liveness and readiness from a status snapshot at time `now` (ms since the epoch): the
 * JSON document /healthz and /readyz serve (the same for both; the status code differs), with
 * why each verdict is false (empty when it is true). `startedAt`, when the agent started, turns
 * the probe red when a first sync never begins or never ends.
 */
export function evaluateHealth(status: AgentStatus, now: number, startedAt?: number) {
  const resync = status.resyncIntervalMs;
  const liveWindow = Math.max(2 * resync, 120_000);
  const readyWindow = Math.max(3 * resync, 180_000);
  const families = [...status.families.entries()];

  const healthReasons: string[] = [];
  const lastAttempt = latest([status.lastSyncAt, ...families.map(([, s]) => s.lastAttemptAt)]);
  if (lastAttempt === undefined) {
    if (startedAt !== undefined && now - startedAt > liveWindow) {
      healthReasons.push(`no sync attempted in the ${seconds(now - startedAt)} since start (limit ${seconds(liveWindow)})`);
    }
  } else if (now - lastAttempt > liveWindow) {
    healthReasons.push(`last sync attempt was ${seconds(now - lastAttempt)} ago (limit ${seconds(liveWindow)}); the sync loop is stuck`);
  }
  const failingWindow = (FAILURES - 1) * resync;
  for (const [family, s] of families) {
    const longEnough = s.failingSince === undefined || now - s.failingSince >= failingWindow;
    if (s.consecutiveFailures >= FAILURES && longEnough) {
      healthReasons.push(`${family}: ${s.consecutiveFailures} syncs in a row failed (limit ${FAILURES}); last error: ${bounded(s.lastError ?? 'unknown')}`);
    }
  }

  const readyReasons: string[] = [];
  if (families.length === 0) readyReasons.push('no sync has run yet');
  for (const [family, s] of families) {
    const lastError = s.lastError === undefined ? '' : `; last error: ${bounded(s.lastError)}`;
    if (s.lastSuccessAt === undefined) readyReasons.push(`${family}: no successful sync yet${lastError}`);
    else if (now - s.lastSuccessAt > readyWindow) {
      readyReasons.push(`${family}: last successful sync was ${seconds(now - s.lastSuccessAt)} ago (limit ${seconds(readyWindow)})${lastError}`);
    }
  }

  return {
    healthy: healthReasons.length === 0,
    ready: readyReasons.length === 0,
    healthReasons,
    readyReasons,
    // currentTime and lastUpdated (the latest success of any family) as in kube-proxy's healthz body.
    currentTime: new Date(now).toISOString(),
    lastUpdated: iso(latest(families.map(([, s]) => s.lastSuccessAt))),
    lastSync: iso(status.lastSyncAt),
    // Go duration syntax, as in the config file.
    resyncInterval: formatGoDuration(BigInt(Math.round(resync)) * 1_000_000n),
    configValid: status.configValid,
    configErrors: boundedList(status.configErrors),
    usingDefaults: status.usingDefaults,
    configHash: status.configHash,
    configFiles: status.configFiles,
    ...(status.rulesKeptFromKernel?.length ? { rulesKeptFromKernel: status.rulesKeptFromKernel } : {}),
    families: Object.fromEntries(families.map(([family, s]) => [family, familyBody(s)])),
  };
}
