// Connections per decision, read from our table's own counters: a nat chain sees only the first
// packet of a connection, so a counter's packets are the connections it decided. The keep set
// counts per element (`flags interval; counter;`), the SNAT and masquerade rules carry a `counter`.
// With nftables one rule masquerades both masqueradeCIDRs and every destination no entry covers,
// so their connections count together under `default`.
import type { Runner } from '../../exec/runner.js';
import { parseIp } from '../../net/cidr.js';
import { decisionTable, resolveDestination, type Decision } from '../../policy/decide.js';
import type { CountedDecision, DecisionCount, FamilyPolicy } from '../../policy/types.js';
import { NFT_NAMES, NFT_TABLE, NFT_TABLE_FAMILY } from './names.js';
import { isObject, ours, parseElement } from './parse.js';

type JsonObject = Record<string, unknown>;

/** A counter's figures, or undefined when `v` is none. */
function counterOf(v: unknown): { packets: number; bytes: number } | undefined {
  if (!isObject(v) || typeof v['packets'] !== 'number' || typeof v['bytes'] !== 'number') return undefined;
  return { packets: v['packets'], bytes: v['bytes'] };
}

/**
 * The list of the keep row an element stands for: the row of the same block, else (elements
 * merged from adjacent rows) the row deciding the element's first address; undefined when no
 * keep row does (drift), so the element is skipped, not guessed.
 */
function keepRowOf(text: string, rows: ReadonlyMap<string, Decision>, table: readonly Decision[]): Decision | undefined {
  let row = rows.get(text);
  if (row === undefined) {
    try {
      row = resolveDestination(table, parseIp(text.split(/[/-]/)[0] ?? ''));
    } catch {
      return undefined;
    }
  }
  return row?.action.kind === 'keep' ? row : undefined;
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
  const doc: unknown = JSON.parse(json);
  const objects = isObject(doc) && Array.isArray(doc['nftables']) ? doc['nftables'].filter(isObject) : [];
  const out: DecisionCount[] = [];
  for (const policy of policies) {
    const n = NFT_NAMES[policy.family];
    const table = decisionTable(policy);
    const rows = new Map(table.map((r) => [r.text, r]));
    const rules = new Map<string, DecisionCount>();
    for (const o of objects) {
      const set = o['set'];
      if (ours(set) && set['name'] === n.set && Array.isArray(set['elem'])) {
        for (const e of set['elem']) {
          const wrapped = isObject(e) ? e['elem'] : undefined;
          const counter = isObject(wrapped) ? counterOf(wrapped['counter']) : undefined;
          const text = isObject(wrapped) ? parseElement(wrapped['val']).text : '';
          const row = counter && keepRowOf(text, rows, table);
          if (counter && row) out.push({ family: policy.family, action: 'keep', list: row.list, cidr: text, ...counter });
        }
      }
      const rule = o['rule'];
      if (!ours(rule) || rule['chain'] !== n.chain || !Array.isArray(rule['expr'])) continue;
      const decides = ruleDecision(rule['expr']);
      const counter = counterOf(rule['expr'].find((e): e is JsonObject => isObject(e) && 'counter' in e)?.['counter']);
      if (decides === undefined || counter === undefined) continue;
      const key = `${decides.action} ${decides.list}`;
      const seen = rules.get(key);
      rules.set(key, { family: policy.family, ...decides, packets: (seen?.packets ?? 0) + counter.packets, bytes: (seen?.bytes ?? 0) + counter.bytes });
    }
    out.push(...rules.values());
  }
  return out;
}

/** Reads the counts of every given family's objects: one `nft -j list table` command. */
export async function readNftCounters(run: Runner, policies: readonly FamilyPolicy[]): Promise<DecisionCount[]> {
  const { stdout } = await run(['nft', '-j', 'list', 'table', NFT_TABLE_FAMILY, NFT_TABLE]);
  return parseNftCounters(stdout, policies);
}
