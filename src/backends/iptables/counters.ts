// Connections per decision, read from our chain's own rule counters. A nat rule sees only the
// first packet of a connection, so its packet counter is the number of connections it decided.
// `iptables -S CHAIN -v` (nft and legacy alike, 1.8.9) prints each rule as `-S` does with
// `-c PACKETS BYTES` before `-j`; without it the line is the one render.ts formats for the rule.
import type { CountedDecision, DecisionCount, FamilyPolicy } from '../../policy/types.js';
import { chainRules, formatSaveRule } from './render.js';

// Greedy: the last `-c P B` before the target (or the end) is the counter, whatever the comment holds.
const COUNTED_LINE = /^(.*) -c (\d+) (\d+)( -j .*|)$/;

/**
 * The counts of each decision of `policy` in a `-S CHAIN -v` listing: the rules of one row (its
 * --to-ports spread, one per source range) add up. A line that maps to no rule of ours (drift,
 * or a listing of another policy) is skipped, not guessed; so is the prelude.
 */
export function parseIptablesCounters(listing: string, policy: FamilyPolicy, chain: string): DecisionCount[] {
  // The same line twice (a CIDR listed twice) is two rules: each listing line takes the next.
  const byLine = new Map<string, CountedDecision[]>();
  const totals = new Map<CountedDecision, { packets: number; bytes: number }>();
  for (const rule of chainRules(policy, { chain, randomFully: false })) {
    if (rule.decides === undefined) continue;
    const line = formatSaveRule(rule);
    byLine.set(line, [...(byLine.get(line) ?? []), rule.decides]);
    totals.set(rule.decides, { packets: 0, bytes: 0 });
  }
  for (const line of listing.split('\n')) {
    const m = COUNTED_LINE.exec(line);
    if (m === null) continue;
    // Whether --random-fully is there depends on the binary, not on what the rule decides: ignored.
    const queue = byLine.get(`${m[1]}${m[4]}`.replace(/ --random-fully$/, ''));
    const decides = queue?.shift();
    const total = decides && totals.get(decides);
    if (total === undefined) continue;
    total.packets += Number(m[2]);
    total.bytes += Number(m[3]);
  }
  return [...totals].map(([decides, t]) => ({ family: policy.family, ...decides, ...t }));
}
