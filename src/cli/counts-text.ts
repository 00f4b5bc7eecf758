// Connections per decision as `status` and `explain` print them: read from the rules' own
// counters (a nat rule counts the first packet of each connection), so they start at 0 whenever
// the agent rewrites its rules.
import type { DecisionCount } from '../policy/types.js';
import type { Family } from '../net/cidr.js';

/** A family as people write it, in every command's text output. */
export const FAMILY_NAME: Readonly<Record<Family, string>> = { ipv4: 'IPv4', ipv6: 'IPv6' };

/** What a count stands for: `keep 10.0.0.0/8 (nonMasqueradeCIDRs)`, `masquerade (the catch-all rule)`. */
export function describeCount(c: DecisionCount): string {
  if (c.cidr !== undefined) return `${c.action} ${c.cidr} (${c.list})`;
  return c.list === 'default' ? `${c.action} (the catch-all rule)` : `${c.action} (every ${c.list} entry)`;
}

/** The lines `status` prints: one per counted entry, the count right-aligned. */
export function formatCountLines(counts: readonly DecisionCount[]): string[] {
  const width = Math.max(0, ...counts.map((c) => String(c.packets).length));
  return counts.map((c) => `  ${FAMILY_NAME[c.family]}  ${String(c.packets).padStart(width)}  ${describeCount(c)}`);
}

/** The count of the entry that decided a destination (undefined: the default), when one counter stands for it alone. */
export function countOfDecision(counts: readonly DecisionCount[], family: Family, match: { readonly list: string; readonly text: string } | undefined): DecisionCount | undefined {
  const same = counts.filter((c) => c.family === family && (match === undefined ? c.list === 'default' : c.list === match.list && c.cidr === match.text));
  // The same CIDR twice, or nft's one masquerade rule for two lists: no one count is the entry's.
  return same.length === 1 ? same[0] : undefined;
}
