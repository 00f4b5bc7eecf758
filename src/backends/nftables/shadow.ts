// Other tables' nat postrouting base chains that may translate a packet before our chain can
// exempt it. The kernel runs the nat chains of a hook in priority order until one sets up a NAT
// binding, so a chain at our priority or before that masquerades or SNATs shadows our exemptions
// (at equal priority the order is that of registration, which nobody controls).
import type { Family } from '../../net/cidr.js';
import { ownerOf, type ShadowingRule } from '../shadow-owner.js';
import { SRCNAT_PRIORITY } from './names.js';
import { isObject, jumpTargets, nftObjects, ours } from './parse.js';

/** A nat postrouting base chain of another table, from `nft -j list chains`. */
export interface NftNatChain {
  readonly family: string;
  readonly table: string;
  readonly chain: string;
  readonly priority: number;
}

/** Such a chain that translates: `masquerade`, `snat`, or `jump CHAIN: masquerade`. */
export type NftTranslator = NftNatChain & { readonly translation: string };

/** The nft table families whose chains see a family's packets. */
const TABLE_FAMILIES: Readonly<Record<Family, readonly string[]>> = { ipv4: ['ip', 'inet'], ipv6: ['ip6', 'inet'] };

/** The other tables' nat postrouting base chains of a family that run at srcnat or before (the latest our chain runs). */
export function natPostroutingChains(json: string, family: Family): NftNatChain[] {
  return nftObjects(json).flatMap(({ chain: c }) => {
    if (!isObject(c) || ours(c) || c['type'] !== 'nat' || c['hook'] !== 'postrouting') return [];
    const { family: f, table, name, prio } = c;
    if (typeof f !== 'string' || typeof table !== 'string' || typeof name !== 'string' || typeof prio !== 'number') return [];
    return TABLE_FAMILIES[family].includes(f) && prio <= SRCNAT_PRIORITY ? [{ family: f, table, chain: name, priority: prio }] : [];
  });
}

/** From `nft -j list chain ...`: the first translating statement of the chain, and the chains it jumps or goes to. */
export function chainTranslation(json: string): { translation: string | undefined; targets: string[] } {
  const rules = nftObjects(json).map((o) => o['rule']);
  const statements = rules.flatMap((r) => (isObject(r) && Array.isArray(r['expr']) ? r['expr'].filter(isObject) : []));
  const translation = statements.map((s) => ('masquerade' in s ? 'masquerade' : 'snat' in s ? 'snat' : '')).find((t) => t !== '');
  return { translation, targets: rules.flatMap(jumpTargets) };
}

/** `table ip kube-proxy chain nat-postrouting prio 100: jump masquerading: masquerade`, owned by kube-proxy. */
export function describeNftTranslator(t: NftTranslator): ShadowingRule {
  // The chains jumped to name the owner too: iptables-nft's `ip nat POSTROUTING` is everyone's, its `KUBE-POSTROUTING` is not.
  const via = [...t.translation.matchAll(/jump (\S+):/g)].map((m) => m[1]!);
  return { rule: `table ${t.family} ${t.table} chain ${t.chain} prio ${t.priority}: ${t.translation}`, owner: ownerOf([t.table, t.chain, ...via]) };
}
