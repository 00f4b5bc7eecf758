// Other tables' nat postrouting base chains that may translate a packet before our chain can
// exempt it. The kernel runs the nat chains of a hook in priority order until one sets up a NAT
// binding, so a chain at our priority or before that masquerades or SNATs shadows our exemptions
// (at equal priority the order is that of registration, which nobody controls).
import type { Family } from '../../net/cidr.js';
import { shadowOwner } from '../shadow-owner.js';
import { NFT_TABLE, NFT_TABLE_FAMILY, SRCNAT_PRIORITY } from './names.js';
import { nftObjects } from './parse.js';

/** A nat postrouting base chain of another table, from `nft -j list chains`. */
export interface NftNatChain {
  readonly family: string;
  readonly table: string;
  readonly chain: string;
  readonly priority: number;
}

/** Such a chain that translates: `masquerade`, `snat`, or `jump CHAIN: masquerade`. */
export interface NftTranslator extends NftNatChain {
  readonly translation: string;
}

/** The nft table families whose chains see a family's packets. */
const TABLE_FAMILIES: Readonly<Record<Family, readonly string[]>> = { ipv4: ['ip', 'inet'], ipv6: ['ip6', 'inet'] };

/** The other tables' nat postrouting base chains of a family that run at srcnat or before (the latest our chain runs). */
export function natPostroutingChains(json: string, family: Family): NftNatChain[] {
  const found: NftNatChain[] = [];
  for (const o of nftObjects(json)) {
    const c = o['chain'];
    if (typeof c !== 'object' || c === null) continue;
    const { family: f, table, name, type, hook, prio } = c as Record<string, unknown>;
    if (typeof f !== 'string' || typeof table !== 'string' || typeof name !== 'string' || typeof prio !== 'number') continue;
    if ((f === NFT_TABLE_FAMILY && table === NFT_TABLE) || type !== 'nat' || hook !== 'postrouting') continue;
    if (TABLE_FAMILIES[family].includes(f) && prio <= SRCNAT_PRIORITY) found.push({ family: f, table, chain: name, priority: prio });
  }
  return found;
}

/** From `nft -j list chain ...`: the first translating statement of the chain, and the chains it jumps or goes to. */
export function chainTranslation(json: string): { translation: string | undefined; targets: string[] } {
  let translation: string | undefined;
  const targets: string[] = [];
  for (const o of nftObjects(json)) {
    const rule = o['rule'];
    const expr = typeof rule === 'object' && rule !== null ? (rule as Record<string, unknown>)['expr'] : undefined;
    for (const s of Array.isArray(expr) ? expr : []) {
      if (typeof s !== 'object' || s === null) continue;
      translation ??= 'masquerade' in s ? 'masquerade' : 'snat' in s ? 'snat' : undefined;
      const jump = (s as Record<string, unknown>)['jump'] ?? (s as Record<string, unknown>)['goto'];
      const target = typeof jump === 'object' && jump !== null ? (jump as Record<string, unknown>)['target'] : undefined;
      if (typeof target === 'string') targets.push(target);
    }
  }
  return { translation, targets };
}

/** `table ip kube-proxy chain nat-postrouting prio 100: jump masquerading: masquerade (kube-proxy)`. */
export function describeNftTranslator(t: NftTranslator): string {
  return `table ${t.family} ${t.table} chain ${t.chain} prio ${t.priority}: ${t.translation} (${shadowOwner([t.table, t.chain])})`;
}
