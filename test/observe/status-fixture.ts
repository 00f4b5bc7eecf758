import type { AgentStatus, FamilyStatus } from '../../src/observe/agent-status.js';
import type { Family } from '../../src/net/cidr.js';

/** A moment to measure from: 2024-01-01T00:00:00Z. */
export const T0 = Date.UTC(2024, 0, 1);

/** A family that synced fine at `at`. */
export function okFamily(at: number, rules = 4): FamilyStatus {
  return { lastAttemptAt: at, lastSuccessAt: at, lastError: undefined, consecutiveFailures: 0, rules, driftRepairs: 0 };
}

/** A status snapshot as the agent reports it: a valid config file, 60 s resync, unless overridden. */
export function makeStatus(families: Partial<Record<Family, FamilyStatus>> = {}, over: Partial<AgentStatus> = {}): AgentStatus {
  const map = new Map<Family, FamilyStatus>();
  for (const f of ['ipv4', 'ipv6'] as const) {
    const s = families[f];
    if (s) map.set(f, s);
  }
  const lastSyncAt = [...map.values()].reduce<number | undefined>((m, s) => (s.lastAttemptAt !== undefined && (m === undefined || s.lastAttemptAt > m) ? s.lastAttemptAt : m), undefined);
  return {
    configValid: true,
    configErrors: [],
    usingDefaults: false,
    configHash: 'abc123',
    configFiles: ['/etc/config/ip-masq-agent'],
    resyncIntervalMs: 60_000,
    lastSyncAt,
    families: map,
    ...over,
  };
}
