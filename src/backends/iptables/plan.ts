// What the iptables backend saw, and what it takes from there to the policy, pure: one
// `iptables-restore --noflush` transaction, and what apply must check before and after it.
import { sameState, type Observed, type OwnedState, type Plan } from '../backend.js';
import { cutExcerpt } from '../../excerpt.js';
import type { Family } from '../../net/cidr.js';
import type { FamilyPolicy } from '../../policy/types.js';
import { exemptionIsFinal } from '../../policy/build.js';
import { KUBE_MARK_COMMENT, NOT_FIRST_NOTE, RENAMED_NOTE } from './constants.js';
import { chainRestoreLines, renderJumpSaveLine, renderSaveLines, type RenderOptions } from './render.js';
import { findJumps, natPayload, planJumpRepair, postroutingRules, quoteRuleArg, renamedRemovalLines, type RenamedChainVerdict } from './rules.js';
import { findShadowingRules, shadowOwner } from './shadow.js';

/** A POSTROUTING rule with our jump's comment that leads to another chain, and what that chain is. */
export interface RenamedJump {
  /** The rule as `-S POSTROUTING` printed it. */
  readonly line: string;
  /** The chain it leads to. */
  readonly target: string;
  readonly verdict: RenamedChainVerdict;
}

/** What the iptables backend's read() saw of one family. */
export interface IptablesObserved extends Observed {
  /** `-S POSTROUTING`, the policy line included. */
  readonly postrouting: readonly string[];
  /** Our chain's `-S` lines: empty when it is absent, undefined when read() did not list it (`owned: false`). */
  readonly chain: readonly string[] | undefined;
  /** The rules with our jump's comment that lead elsewhere, each with the chain it leads to judged. */
  readonly renamed: readonly RenamedJump[];
  /** The chains that rules before our jump lead to, by name, as `-S` listed them (shadow.ts: which, how deep). */
  readonly followed: Readonly<Record<string, readonly string[]>>;
}

/** What the iptables backend's apply() runs for one family; data only. */
export interface IptablesPlan extends Plan {
  /** The nat chain written. */
  readonly chain: string;
  /** The one restore transaction: our chain, then the POSTROUTING lines; empty when up to date. */
  readonly payload: string;
  /** Our chain's payload alone, when `payload` deletes rules: a rule deleted meanwhile makes the restore refuse it. */
  readonly fallback: string | undefined;
  /** The payload adds a jump while our chain may be there: `-C` must agree none is (a listing that lost lines). */
  readonly probeJump: boolean;
  /** The payload changes POSTROUTING: a listing after it must show exactly our jump (first when wanted) and none of `removed`. */
  readonly verify: { readonly first: boolean; readonly removed: readonly string[] } | undefined;
  /** Why the sync fails once the payload is in: a rule with our jump's comment leads to a chain not ours. */
  readonly failure: string | undefined;
  /** The repairs of POSTROUTING in words, for the log. */
  readonly repairs: readonly string[];
}

/** The read-back's note on a renamed jump: what it leads to, and what the sync does about it. */
function renamedNote(r: RenamedJump): string {
  return r.verdict.ours
    ? `${RENAMED_NOTE} ${r.target} (${r.verdict.rules} rule${r.verdict.rules === 1 ? '' : 's'}, all ours: our chain renamed); the sync deletes that rule and chain`
    : `${RENAMED_NOTE} ${r.target}, not ours (${r.verdict.why}); the agent leaves it, and its syncs fail until it is removed`;
}

/** Why a sync fails while a rule with our jump's comment leads to a chain that is not clearly ours. */
function foreignRenamedMessage(r: RenamedJump, chain: string): string {
  const why = r.verdict.ours ? '' : r.verdict.why;
  return (
    `nat POSTROUTING rule ${cutExcerpt(r.line, 240)} carries our jump's comment but leads to ${r.target}, not ${chain}, and ${why}: ` +
    'the agent does not touch it, and traffic meets it beside our chain; delete that rule (and its chain) by hand'
  );
}

/**
 * What read() returns as `owned`: every jump to our chain in any form (an extra one is drift), a
 * note when our jump should be first and is not, each renamed jump with a note, then the chain.
 */
export function ownedLines(postrouting: readonly string[], chainLines: readonly string[], renamed: readonly RenamedJump[], chain: string): OwnedState {
  const rules = postroutingRules(postrouting);
  const jumps = rules.filter((r) => r.target === chain).map((r) => r.line);
  const top = rules[0];
  // A chain written for `first` (it starts with the kube-proxy mark rule) wants our jump first:
  // a rule someone inserted above it shows as one more line naming that rule, so the sync moves
  // the jump back. A missing jump is drift of its own.
  const markRule = ` -m comment --comment ${quoteRuleArg(KUBE_MARK_COMMENT)} -j RETURN`;
  const notFirst = top !== undefined && top.target !== chain && jumps.length > 0 && chainLines.some((l) => l.endsWith(markRule));
  const note = notFirst ? [`${NOT_FIRST_NOTE} ${cutExcerpt(top.line, 200)}`] : [];
  return [...note, ...jumps, ...renamed.flatMap((r) => [r.line, renamedNote(r)]), ...chainLines];
}

/**
 * What POSTROUTING needs, from its listing and the renamed jumps read beside it; pure: restore
 * lines that put the jump right and take our renamed chains back (`removed`: their jumps), and
 * whether they add a jump (then `-C` must agree none is there when the chain may be).
 */
export function planPostrouting(postrouting: readonly string[], renamed: readonly RenamedJump[], chain: string, first: boolean) {
  const repair = planJumpRepair(postrouting, chain, renderJumpSaveLine(chain), first);
  const ours = renamed.filter((r) => r.verdict.ours);
  const foreign = renamed.find((r) => !r.verdict.ours);
  const n = repair.remove.length;
  const repairs = [
    ...(repair.kind === 'append' ? ['add our jump at the end of POSTROUTING'] : []),
    ...(repair.kind === 'insert-first' ? ['add our jump as rule 1 of POSTROUTING'] : []),
    ...(repair.kind === 'replace' ? [`replace ${n} jump${n === 1 ? '' : 's'} to ${chain} (older forms, duplicates, or ours not first) by ours`] : []),
    ...ours.map((r) => `delete our chain renamed to ${r.target} and its jump`),
  ];
  return {
    lines: [...repair.lines, ...ours.flatMap((r) => renamedRemovalLines(r.line, r.target))],
    addsJump: repair.kind === 'append' || repair.kind === 'insert-first',
    removed: ours.map((r) => r.line),
    repairs,
    failure: foreign === undefined ? undefined : foreignRenamedMessage(foreign, chain),
  };
}

/** What it takes to turn what read() saw into `policy`; pure. */
export function planIptables(observed: IptablesObserved, policy: FamilyPolicy, opts: RenderOptions, want: OwnedState = renderSaveLines(policy, opts)): IptablesPlan {
  const { chain } = opts;
  const first = exemptionIsFinal(policy);
  // Where our jump will be: first, or where the first jump to our chain is (else at the end).
  const shadowing = first ? [] : findShadowingRules(observed.postrouting, chain, observed.followed).map((rule) => ({ rule, owner: shadowOwner(rule) }));
  const family: Family = policy.family;
  if (sameState(observed.owned, want)) {
    return { family, upToDate: true, shadowing, chain, payload: '', fallback: undefined, probeJump: false, verify: undefined, failure: undefined, repairs: [] };
  }
  const p = planPostrouting(observed.postrouting, observed.renamed, chain, first);
  // A config change with the jump in place pipes the chain's payload as it is, else its lines join the repair's.
  const chainLines = chainRestoreLines(policy, opts);
  const chainPayload = natPayload(chainLines);
  const deletes = p.lines.some((l) => l.startsWith('-D '));
  return {
    family,
    upToDate: false,
    shadowing,
    chain,
    payload: p.lines.length === 0 ? chainPayload : natPayload([...chainLines, ...p.lines]),
    fallback: deletes ? chainPayload : undefined,
    // No jump can lead to a chain that is not there: with it listed absent, -C has nothing to ask.
    probeJump: p.addsJump && (observed.chain === undefined || observed.chain.length > 0),
    verify: p.lines.length > 0 ? { first, removed: p.removed } : undefined,
    failure: p.failure,
    repairs: p.repairs,
  };
}

/**
 * Why a POSTROUTING listing taken after a repair shows that it did not take (not exactly our one
 * jump, first when wanted, or a deleted renamed jump still there); undefined when it did.
 */
export function repairNotTaken(after: readonly string[], chain: string, verify: NonNullable<IptablesPlan['verify']>): string | undefined {
  const jumps = findJumps(after, chain);
  const left = verify.removed.filter((l) => after.includes(l));
  if (planJumpRepair(after, chain, renderJumpSaveLine(chain), verify.first).kind === 'none' && left.length === 0) return undefined;
  const deleted = left.length > 0 ? ` and ${left.length} deleted rule${left.length === 1 ? '' : 's'} still there` : '';
  return `${jumps.length} jump${jumps.length === 1 ? '' : 's'} to ${chain}${deleted}`;
}
