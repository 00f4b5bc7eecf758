// The one longest-prefix resolution of a family's decision table. explain, the fake backend and
// both renderers use it, so what explain predicts is what the rules are built from.
import { cidrContains, cidrLast, type IpAddress } from '../net/cidr.js';
import { compareCidrs } from '../net/normalize.js';
import type { Action, DecisionList, ExemptRange, FamilyPolicy, SourceRange } from './types.js';

/** One row of the decision table: a destination prefix and what traffic to it gets. */
export interface Decision extends SourceRange {
  readonly action: Action;
  readonly list: DecisionList;
}

/** What an exempt destination gets: the pod IP is kept. */
export const KEEP: Action = { kind: 'keep' };

/** Whether a policy uses anything beyond today's exempt list (so it renders the longest-prefix way). */
export function usesDecisions(fp: FamilyPolicy): boolean {
  return (fp.actions ?? []).length > 0;
}

/** Whether a policy needs the longest-prefix rule layout: masquerade or SNAT entries, or a source scope. */
export function usesDecisionRules(fp: FamilyPolicy): boolean {
  return usesDecisions(fp) || fp.sources !== undefined;
}

function fromExempt(e: ExemptRange): Decision {
  return { cidr: e.cidr, text: e.text, action: KEEP, list: e.reason === 'link-local' ? 'link-local' : 'nonMasqueradeCIDRs', source: e.source, path: e.path };
}

/**
 * The decision table in rule order. With only exempt entries: their order (link-local, then
 * config order), as always. With masquerade or SNAT entries: longest prefix first (stable), so the
 * first rule that matches a destination is its longest matching prefix.
 */
export function decisionTable(fp: FamilyPolicy): Decision[] {
  const rows = [...fp.exempt.map(fromExempt), ...(fp.actions ?? [])];
  if (!usesDecisions(fp)) return rows;
  return rows.sort((a, b) => b.cidr.prefix - a.cidr.prefix);
}

/** The default for a destination no row covers: masquerade, as the reference does. */
export const DEFAULT_ACTION: Action = { kind: 'masquerade' };

/**
 * The row that decides `ip` (undefined: none does, DEFAULT_ACTION applies): the first row of `table`
 * (from decisionTable) that contains it, as the first matching iptables rule does. The table is
 * ordered longest prefix first whenever actions differ, so this is the longest matching prefix; with
 * only exempt rows every match keeps the pod IP, and the first is the one the rules hit. Equal
 * prefixes never carry different actions (merge refuses them).
 */
export function resolveDestination(table: readonly Decision[], ip: IpAddress): Decision | undefined {
  return table.find((row) => row.cidr.family === ip.family && cidrContains(row.cidr, ip));
}

/** Whether a source may be masqueraded or SNATed at all (masqueradeSourceCIDRs). */
export function sourceInScope(fp: FamilyPolicy, ip: IpAddress): boolean {
  return fp.sources?.some((s) => cidrContains(s.cidr, ip)) ?? true;
}

/** Whether two actions are the same. */
export function sameAction(a: Action, b: Action): boolean {
  if (a.kind !== b.kind) return false;
  return a.kind !== 'snat' || (b.kind === 'snat' && a.toSourceText === b.toSourceText);
}

/** A row that changes nothing: the decision it is nested in (or the default) is the same. */
export interface RedundantRow {
  readonly row: Decision;
  /** The row it is nested in; undefined when it repeats the default (masquerade). */
  readonly by: Decision | undefined;
}

/**
 * Rows whose action equals that of the nearest shorter prefix covering them (or of the default when
 * none does): removing them changes no verdict. Rows with the same prefix and action as an earlier
 * one count as redundant too. Built-in link-local rows are never reported.
 */
export function findRedundantRows(fp: FamilyPolicy): RedundantRow[] {
  const rows = decisionTable(fp);
  const parents = nearestContainers(rows);
  return rows.flatMap((row, i) => {
    const by = parents[i];
    // Without masquerade or SNAT rows, nested exempt ranges keep today's report (normalizeRanges).
    if (row.list === 'link-local' || (row.action.kind === 'keep' && !usesDecisions(fp))) return [];
    return sameAction(row.action, by?.action ?? DEFAULT_ACTION) ? [{ row, by }] : [];
  });
}

/**
 * For each row, the row with the longest prefix that contains it, among the others (for the same
 * block, only an earlier row of the table); the earliest row of the table wins a tie. One sort
 * and one sweep: CIDR blocks nest or are disjoint, so in address order the rows containing a row
 * are a stack of nested blocks. (Comparing every pair took minutes at 50,000 rows.)
 */
function nearestContainers(rows: readonly Decision[]): (Decision | undefined)[] {
  const order = rows.map((_, i) => i).sort((a, b) => compareCidrs(rows[a]!.cidr, rows[b]!.cidr) || a - b);
  const parents = new Array<Decision | undefined>(rows.length);
  const stack: { row: Decision; last: bigint }[] = [];
  for (const i of order) {
    const row = rows[i]!;
    let top = stack[stack.length - 1];
    while (top !== undefined && (top.row.cidr.family !== row.cidr.family || row.cidr.base > top.last)) {
      stack.pop();
      top = stack[stack.length - 1];
    }
    parents[i] = top?.row;
    // A later row of the same block: the first one stays the container of what follows.
    if (top !== undefined && top.row.cidr.prefix === row.cidr.prefix) continue;
    stack.push({ row, last: cidrLast(row.cidr) });
  }
  return parents;
}

/** One line about a redundant row, naming both places, for logs and `validate`. */
export function describeRedundantRow(r: RedundantRow): string {
  const what = (d: Decision): string => (d.action.kind === 'keep' ? 'keeps the pod IP' : d.action.kind === 'snat' ? `SNATs to ${d.action.toSourceText}` : 'masquerades');
  const at = (d: Decision): string => `${d.source} ${d.path}`.trim();
  if (r.by === undefined) return `${r.row.text} (${at(r.row)}) ${what(r.row)}, as every destination no other entry covers does; it changes nothing`;
  return `${r.row.text} (${at(r.row)}) ${what(r.row)}, as the ${r.by.text} it is nested in (${r.by.list === 'link-local' ? 'built-in link-local' : at(r.by)}) does; it changes nothing`;
}
