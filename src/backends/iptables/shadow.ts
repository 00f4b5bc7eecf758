// Rules of others that translate traffic before our jump: in nat POSTROUTING, and in the chains its
// rules before our jump lead to, at most two levels deep and eight chains in all (Calico's
// cali-nat-outgoing, Cilium's, flannel's, AWS's and the CNI bridge's masquerade there). kube-proxy's
// KUBE-* chains are not followed: it masquerades only what it marked for masquerade, which is
// meant to be, and following them would cost nearly every node a listing per sync (70-150 ms on
// legacy next to a big kube-proxy; netfilter-facts.md). Matches are not evaluated: a rule that
// masquerades some traffic before our jump counts.
import { jumpComment } from './constants.js';
import { mayBeOurChain, parseRuleLine, type ParsedRule } from './rules.js';
import { FOLLOW_DEPTH, ownerOf, type ShadowOwner } from '../shadow-owner.js';

const TRANSLATING = new Set(['MASQUERADE', 'SNAT']);

/** The rules of `chainName` in `lines` that count: in POSTROUTING, those before our jump (all when it is missing). */
function rulesBeforeOurJump(lines: readonly string[], chainName: string, chain: string): ParsedRule[] {
  const rules = lines.map(parseRuleLine).filter((r): r is ParsedRule => r?.chain === chainName);
  const end = chainName === 'POSTROUTING' ? rules.findIndex((r) => r.target === chain) : -1;
  return end < 0 ? rules : rules.slice(0, end);
}

/** The chain a rule leads to that the shadow check follows: not ours, not kube-proxy's, not a target. */
function followedTarget({ target, comment: c }: ParsedRule, chain: string): string | undefined {
  if (target === undefined || target === chain || !mayBeOurChain(target) || target.toUpperCase().startsWith('KUBE-')) return undefined;
  // A rule with our jump's comment is our chain renamed: read() judges it on its own.
  return c === jumpComment(chain) || c === `"${jumpComment(chain)}"` ? undefined : target;
}

/** The chains to list next below `chainName`, from its `-S` lines (POSTROUTING: up to our jump). */
export function chainsToFollow(lines: readonly string[], chainName: string, chain: string): string[] {
  const found = rulesBeforeOurJump(lines, chainName, chain).flatMap((r) => followedTarget(r, chain) ?? []);
  return [...new Set(found)];
}

/**
 * Finds the rules (as `iptables -S` prints them) that translate traffic before our jump: MASQUERADE
 * or SNAT in nat POSTROUTING before it (everywhere when it is missing), or in the chains `followed`
 * (their `-S` lines by name, as read() listed them) that rules there lead to.
 */
export function findShadowingRules(postrouting: readonly string[], chain: string, followed: Readonly<Record<string, readonly string[]>> = {}): string[] {
  const found: string[] = [];
  const seen = new Set<string>();
  const walk = (lines: readonly string[], chainName: string, depth: number): void => {
    for (const rule of rulesBeforeOurJump(lines, chainName, chain)) {
      if (TRANSLATING.has(rule.target ?? '')) found.push(rule.line);
      const next = followedTarget(rule, chain);
      const listed = next === undefined ? undefined : followed[next];
      if (next === undefined || listed === undefined || depth >= FOLLOW_DEPTH || seen.has(next)) continue;
      seen.add(next);
      walk(listed, next, depth + 1);
    }
  };
  walk(postrouting, 'POSTROUTING', 0);
  return found;
}

/** The owner of a nat POSTROUTING rule, told from the chain it jumps to, its comment, or its output interface. */
export function shadowOwner(line: string): ShadowOwner {
  const rule = parseRuleLine(line);
  // A rule found in a followed chain is told by that chain's name (cali-nat-outgoing), else by where it leads.
  const target = rule?.chain === 'POSTROUTING' ? (rule.target ?? '') : (rule?.chain ?? '');
  const comment = rule?.comment ?? '';
  // Docker's own rule has no comment: `-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`.
  const iface = / -o (\S+)/.exec(line)?.[1] ?? '';
  const owner = ownerOf([target], comment);
  if (owner !== 'unknown') return owner;
  if (/^docker\d|^br-[0-9a-f]{12}$/.test(iface)) return 'docker';
  if (/^cni\d|^cbr\d/.test(iface)) return 'cni-bridge';
  if (/^flannel/.test(iface)) return 'flannel';
  return 'unknown';
}
