// Who wrote a NAT rule that runs before ours, told from the names it lives under (iptables chains
// such as KUBE-POSTROUTING; nft tables and chains such as `ip kube-proxy`) and the words of its comment,
// and how far both backends' shadow checks follow jumps (one bound for both).

/** The `owner` label of `ip_masq_agent_shadowing_rules`. */
export type ShadowOwner = 'kube-proxy' | 'calico' | 'cilium' | 'flannel' | 'aws' | 'cni-bridge' | 'docker' | 'kindnet' | 'unknown';

// Each owner's names (prefixes, without regard to case) and comment words; the first match wins.
const OWNER_SIGNS: readonly (readonly [owner: ShadowOwner, names: RegExp, words: RegExp])[] = [
  ['kube-proxy', /^KUBE-|^kube-?proxy$/i, /^kubernetes |kube-proxy/i],
  ['calico', /^cali/i, /^cali:/],
  ['cilium', /^(OLD_)?CILIUM/i, /^cilium/i],
  ['flannel', /^flannel/i, /^flanneld? /i],
  ['aws', /^AWS-/i, /^AWS,? SNAT/i],
  ['cni-bridge', /^CNI-/, /^name: /],
  ['docker', /^docker/i, /^docker/i],
  ['kindnet', /^kind/i, /^kindnet/i],
];

/** How many levels of chains below others' nat postrouting chains the shadow check lists. */
export const FOLLOW_DEPTH = 2;
/** How many chains the shadow check lists at most per read. */
export const MAX_FOLLOWED_CHAINS = 8;

/** A rule of others that translates before ours, and who wrote it. */
export interface ShadowingRule {
  /** The rule as its tool lists it (iptables) or where it is and what it does (nft). */
  readonly rule: string;
  readonly owner: ShadowOwner;
}

/** The owner of a rule found under these names (table first, then chains) or with this comment, or `unknown`. */
export function ownerOf(names: readonly string[], comment = ''): ShadowOwner {
  for (const [owner, pattern, words] of OWNER_SIGNS) if (names.some((n) => pattern.test(n)) || words.test(comment)) return owner;
  return 'unknown';
}
