// Who wrote a NAT rule that runs before ours, told from the names it lives under: iptables chain
// names (`KUBE-POSTROUTING`), nft table and chain names (`ip kube-proxy`, `nat-postrouting`).

/** Owners by name pattern, the first match wins. */
const OWNERS: readonly (readonly [string, RegExp])[] = [
  ['kube-proxy', /^kube-?proxy$|^KUBE-/i],
  ['calico', /^cali/i],
  ['cilium', /^cilium/i],
  ['flannel', /^flannel/i],
  ['aws', /^AWS-/i],
  ['cni', /^CNI-/],
  ['docker', /^docker/i],
  ['kindnet', /^kind/i],
];

/** The owner of a rule found under these names (table first, then chains), or `unknown`. */
export function shadowOwner(names: readonly string[]): string {
  for (const [owner, pattern] of OWNERS) if (names.some((n) => pattern.test(n))) return owner;
  return 'unknown';
}
