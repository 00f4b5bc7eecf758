// Rules of others that translate traffic before our jump. Only nat POSTROUTING itself is read:
// following its jumps into other chains (Calico's cali-POSTROUTING -> cali-nat-outgoing, Cilium's
// CILIUM_POST_nat, ...) would cost one listing per chain at every sync, 70-150 ms each on legacy
// next to a big kube-proxy (netfilter-facts.md).
import { parseRuleLine, ruleComment } from './rules.js';

/**
 * Finds the nat POSTROUTING rules (as `iptables -S POSTROUTING` prints them) that come before our
 * jump and end in MASQUERADE or SNAT: a packet they match is translated before our chain can
 * exempt it. When our jump is missing, every such rule counts.
 */
export function findShadowingRules(postrouting: readonly string[], chain: string): string[] {
  const found: string[] = [];
  for (const line of postrouting) {
    const rule = parseRuleLine(line);
    if (rule?.chain !== 'POSTROUTING') continue;
    if (rule.target === chain) break;
    if (rule.target === 'MASQUERADE' || rule.target === 'SNAT') found.push(line);
  }
  return found;
}

/** Who writes rules into nat POSTROUTING, as the `owner` label of `ip_masq_agent_shadowing_rules`. */
export type ShadowOwner = 'kube-proxy' | 'calico' | 'cilium' | 'flannel' | 'aws' | 'cni-bridge' | 'docker' | 'unknown';

// What each owner's rules say of themselves: a chain name they jump to (prefix, compared without
// case), or words in their comment or output interface. First match wins, so the longer prefixes
// of one owner come before a shorter one of another.
const OWNER_SIGNS: readonly (readonly [owner: ShadowOwner, chainPrefixes: readonly string[], words: RegExp])[] = [
  ['kube-proxy', ['KUBE-'], /^kubernetes |kube-proxy/i],
  ['calico', ['cali-'], /^cali:/],
  ['cilium', ['CILIUM_', 'OLD_CILIUM_'], /^cilium/i],
  ['flannel', ['FLANNEL'], /^flanneld? /i],
  ['aws', ['AWS-SNAT-CHAIN', 'AWS-CONNMARK-CHAIN'], /^AWS, SNAT|^AWS SNAT/i],
  ['cni-bridge', ['CNI-'], /^name: /],
  ['docker', ['DOCKER'], /^docker/i],
];

/** The owner of a nat POSTROUTING rule, told from the chain it jumps to, its comment, or its output interface. */
export function shadowOwner(line: string): ShadowOwner {
  const rule = parseRuleLine(line);
  const target = rule?.target ?? '';
  const comment = ruleComment(line) ?? '';
  // Docker's own rule has no comment: `-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`.
  const iface = / -o (\S+)/.exec(line)?.[1] ?? '';
  for (const [owner, prefixes, words] of OWNER_SIGNS) {
    if (prefixes.some((p) => target.toUpperCase().startsWith(p.toUpperCase())) || words.test(comment)) return owner;
  }
  if (/^docker\d|^br-[0-9a-f]{12}$/.test(iface)) return 'docker';
  if (/^cni\d|^cbr\d/.test(iface)) return 'cni-bridge';
  if (/^flannel/.test(iface)) return 'flannel';
  return 'unknown';
}
