// Connections per decision, read from our table's own counters: a nat chain sees only the first
// packet of a connection, so a counter's packets are the connections it decided. With nftables one
// rule masquerades both masqueradeCIDRs and every destination no entry covers, so their connections
// count together under `default`.
import { decisionTable, resolveDestination } from '../../policy/decide.js';
import type { CountedDecision, DecisionCount, FamilyPolicy } from '../../policy/types.js';
import { familyBodies, isObject, nftObjects, parseElement, type JsonObject } from './parse.js';

/** A counter's figures, or undefined when `v` is none. */
function counterOf(v: unknown): { packets: number; bytes: number } | undefined {
  if (!isObject(v) || typeof v['packets'] !== 'number' || typeof v['bytes'] !== 'number') return undefined;
  return { packets: v['packets'], bytes: v['bytes'] };
}

/** What a counting rule of our chain decides: masquerade, or SNAT by the map (`snat to saddr` is `first`'s keep, counted by the set). */
function ruleDecision(expr: readonly unknown[]): CountedDecision | undefined {
  const find = (key: string): JsonObject | undefined => expr.find((e): e is JsonObject => isObject(e) && key in e);
  if (find('masquerade')) return { action: 'masquerade', list: 'default' };
  const snat = find('snat')?.['snat'];
  return isObject(snat) && isObject(snat['addr']) && 'map' in snat['addr'] ? { action: 'snat', list: 'snat' } : undefined;
}

/**
 * The counts of each policy's decisions in a `nft -j list table` document: one per keep-set
 * element (its CIDR and list), one for the SNAT rules, one for the masquerade rules (their
 * --to-ports spread adds up). Objects of other tables, and rules that count nothing, are skipped.
 */
export function parseNftCounters(json: string, policies: readonly FamilyPolicy[]): DecisionCount[] {
  const objects = nftObjects(json);
  return policies.flatMap((policy) => {
    const { sets, rules } = familyBodies(objects, policy.family);
    const table = decisionTable(policy);
    const rows = new Map(table.map((r) => [r.text, r]));
    const keeps: DecisionCount[] = [];
    const counted = new Map<string, DecisionCount>();
    for (const set of sets) {
      for (const e of Array.isArray(set['elem']) ? set['elem'] : []) {
        const { val, counter } = isObject(e) && isObject(e['elem']) ? e['elem'] : {};
        const { text, span } = parseElement(val);
        // The keep row of the same block, else (elements merged from adjacent rows) the row deciding
        // the element's first address; an element no keep row decides (drift) is skipped, not guessed.
        const row = rows.get(text) ?? (span && resolveDestination(table, { family: span.family, value: span.first }));
        const figures = counterOf(counter);
        if (figures && row?.action.kind === 'keep') keeps.push({ family: policy.family, action: 'keep', list: row.list, cidr: text, ...figures });
      }
    }
    for (const rule of rules) {
      if (!Array.isArray(rule['expr'])) continue;
      const decides = ruleDecision(rule['expr']);
      const counter = counterOf(rule['expr'].find((e): e is JsonObject => isObject(e) && 'counter' in e)?.['counter']);
      if (decides === undefined || counter === undefined) continue;
      const key = `${decides.action} ${decides.list}`;
      const seen = counted.get(key);
      counted.set(key, { family: policy.family, ...decides, packets: (seen?.packets ?? 0) + counter.packets, bytes: (seen?.bytes ?? 0) + counter.bytes });
    }
    return [...keeps, ...counted.values()];
  });
}
