// Reading `iptables -S` lines as rules, not as text: a jump to our chain is a rule whose target
// (`-j` or `-g`) is our chain, whatever its comment says (older releases' jumps carry other
// comments; compat-contract.md), and a comment that mentions `-j IP-MASQ-AGENT` is no jump.
import { cutExcerpt } from '../../excerpt.js';
import { BUILTIN_CHAINS, OUR_CHAIN_COMMENTS, TARGET_NAMES, jumpComment } from './constants.js';

/** An argument as iptables prints it (xtables_save_string): bare when only [A-Za-z0-9_-], else quoted. */
export function quoteRuleArg(value: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(value)) return value;
  return `"${value.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

/**
 * Splits one `iptables -S` / `iptables-save` line into its arguments as iptables-restore does:
 * whitespace separates, double quotes group, and inside quotes a backslash takes the next
 * character literally (xtables_save_string writes `"` `\` `'` so). Throws on an open quote.
 */
export function splitRuleArgs(line: string): string[] {
  const args: string[] = [];
  // An argument is a run of bare characters and quoted parts; a quote that never closes is the last alternative.
  for (const [arg, open] of line.matchAll(/(?:"(?:\\[^]|[^"\\])*"|[^ \t\n\r"])+|(")/g)) {
    if (open !== undefined) throw new Error(`unterminated quote in iptables rule: ${line.length > 200 ? `${line.slice(0, 200)}... (cut)` : line}`);
    args.push(arg.replace(/"((?:\\[^]|[^"\\])*)"/g, (_, quoted: string) => quoted.replace(/\\([^])/g, '$1')));
  }
  return args;
}

/** One `-A CHAIN ...` line of `iptables -S`, parsed. */
export interface ParsedRule {
  /** The line exactly as iptables printed it (what `-D` in a restore payload takes back). */
  readonly line: string;
  /** The chain the rule is in. */
  readonly chain: string;
  /** The `-j` or `-g` target, when there is one. */
  readonly target: string | undefined;
  /** The first `--comment` value, unquoted, when there is one. */
  readonly comment: string | undefined;
}

/** Parses an `-A CHAIN ...` line; undefined for anything else (`-P`, `-N`, blank, comments). */
export function parseRuleLine(line: string): ParsedRule | undefined {
  if (!line.startsWith('-A ')) return undefined;
  const args = splitRuleArgs(line);
  const chain = args[1];
  if (chain === undefined) return undefined;
  let target: string | undefined;
  let comment: string | undefined;
  for (let i = 2; i < args.length && target === undefined; i++) {
    const a = args[i];
    // A comment is free text: one such as `-j` is printed bare and must not be read as a target.
    if (a === '--comment') comment = comment ?? args[++i];
    else if (a === '-j' || a === '--jump' || a === '-g' || a === '--goto') target = args[i + 1];
  }
  return { line, chain, target, comment };
}

/** The POSTROUTING rules in `-S` output (in order) that jump to `chain`, in any form. */
export function findJumps(lines: readonly string[], chain: string): ParsedRule[] {
  return postroutingRules(lines).filter((r) => r.target === chain);
}

/** The POSTROUTING rules in `-S` output, in order. */
export function postroutingRules(postrouting: readonly string[]): ParsedRule[] {
  return postrouting.map(parseRuleLine).filter((r): r is ParsedRule => r !== undefined && r.chain === 'POSTROUTING');
}

/**
 * What it takes to leave exactly one POSTROUTING jump to `chain`, ours (`ourJump`, as `-S` prints
 * it): `kind` none, append, insert-first (no jump yet, and it must be first) or replace (other
 * forms, duplicates, or ours not first); the jumps to `remove`; and the restore `lines`. Each jump
 * is deleted by its spec (never by number: a rule inserted meanwhile would shift the numbers onto
 * someone else's rule), and ours inserted where the first one was, so traffic meets it where it
 * met the old one; with `first` at position 1, where it must stay.
 */
export function planJumpRepair(postrouting: readonly string[], chain: string, ourJump: string, first = false) {
  const rules = postroutingRules(postrouting);
  const at = rules.findIndex((r) => r.target === chain);
  const insert = (n: number): string => `-I POSTROUTING ${n} ${ourJump.slice('-A POSTROUTING '.length)}`;
  if (at < 0) return first ? { kind: 'insert-first', remove: [], lines: [insert(1)] } : { kind: 'append', remove: [], lines: [ourJump] };
  const jumps = rules.filter((r) => r.target === chain);
  if (jumps.length === 1 && jumps[0]?.line === ourJump && (!first || at === 0)) return { kind: 'none', remove: [], lines: [] };
  const remove = jumps.map((r) => r.line);
  return { kind: 'replace', remove, lines: [...remove.map(deleteSpec), insert(first ? 1 : at + 1)] };
}

/** An `iptables-restore --noflush` payload of the nat table that runs `lines`, all or nothing. */
export const natPayload = (lines: readonly string[]): string => `${['*nat', ...lines, 'COMMIT'].join('\n')}\n`;

/** The restore line that deletes an `-A` line of `iptables -S` by its spec. */
export const deleteSpec = (line: string): string => `-D ${line.slice('-A '.length)}`;

/**
 * The POSTROUTING rules that carry our jump's comment (today's form, or v2.1.0-v2.12.1's wrapped
 * in literal quotes) but lead somewhere other than `chain`: what `iptables -t nat -E CHAIN OTHER`
 * leaves, since a renamed chain keeps its jumps. Such a rule still decides traffic.
 */
export function findRenamedJumps(postrouting: readonly string[], chain: string): ParsedRule[] {
  const ours = jumpComment(chain);
  // Every read asks this: only lines that hold the comment's text are parsed (the quoted form holds it too).
  return postroutingRules(postrouting.filter((l) => l.includes(ours))).filter((r) => r.target !== chain && (r.comment === ours || r.comment === `"${ours}"`));
}

/** What the chain a renamed jump leads to holds: our rules only (our chain renamed), or not. */
export type RenamedChainVerdict = { readonly ours: true; readonly rules: number } | { readonly ours: false; readonly why: string };

// The targets our chain's rules use; a rule of ours never jumps to another chain.
const OUR_RULE_TARGETS = new Set(['RETURN', 'ACCEPT', 'MASQUERADE', 'SNAT']);

/** Whether `target` may name a chain of ours: neither an iptables target nor a built-in chain. */
export const mayBeOurChain = (target: string): boolean => !TARGET_NAMES.includes(target) && !BUILTIN_CHAINS.includes(target);

/**
 * Judges the chain `target` that a renamed jump leads to, from its `-S target` lines (undefined
 * when it could not be listed): ours when every rule in it carries one of our comments and ends
 * in one of our targets. Anything else is someone's, and not ours to delete.
 */
export function judgeRenamedChain(target: string | undefined, listing: readonly string[] | undefined): RenamedChainVerdict {
  if (target === undefined) return { ours: false, why: 'the rule jumps nowhere' };
  if (!mayBeOurChain(target)) return { ours: false, why: `${target} is no chain of ours` };
  if (listing === undefined) return { ours: false, why: `nat chain ${target} cannot be listed` };
  let rules = 0;
  for (const line of listing) {
    const r = parseRuleLine(line);
    if (r === undefined) continue;
    if (r.chain !== target || r.comment === undefined || !OUR_CHAIN_COMMENTS.includes(r.comment) || !OUR_RULE_TARGETS.has(r.target ?? '')) {
      return { ours: false, why: `its rule ${cutExcerpt(line, 160)} is not one of ours` };
    }
    rules++;
  }
  return { ours: true, rules };
}

/** Restore lines that take back our renamed chain: its jump deleted by spec, then the chain flushed and deleted. */
export function renamedRemovalLines(jumpLine: string, target: string): string[] {
  return [deleteSpec(jumpLine), `-F ${target}`, `-X ${target}`];
}
