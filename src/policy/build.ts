import type { CidrEntry, MasqConfig } from '../config/config.js';
import { LINK_LOCAL_V4, LINK_LOCAL_V6, parseCidr, type Family, type IpAddress } from '../net/cidr.js';
import type { ActionRange, ExemptRange, FamilyPolicy, Policy, PortRange, SourceRange } from './types.js';
import { decisionTable, resolveDestination, sourceInScope, type Decision } from './decide.js';

/** Agent flags that shape the rules, beyond the config file. */
export interface PolicyOptions extends Pick<FamilyPolicy, 'randomFully' | 'toPorts' | 'postroutingPosition' | 'masqueradeBit'> {
  readonly enableIPv6: boolean;
}

/** kube-proxy's default `--iptables-masquerade-bit`: its mark is 0x4000/0x4000. */
export const DEFAULT_MASQUERADE_BIT = 14;

/** The mark kube-proxy sets on traffic it wants masqueraded, as `0x4000` (value and mask are equal). */
export function masqueradeMarkHex(bit: number | undefined): string {
  return `0x${(2 ** (bit ?? DEFAULT_MASQUERADE_BIT)).toString(16)}`;
}

/** Whether an exemption must be final (see PostroutingPosition). */
export function exemptionIsFinal(policy: Pick<FamilyPolicy, 'postroutingPosition'>): boolean {
  return policy.postroutingPosition === 'first';
}

// The link-local constants are canonical text already.
const builtIn = (text: string): ExemptRange => ({ cidr: parseCidr(text), text, reason: 'link-local', source: 'built-in', path: '' });

/** A config entry's place in the policy: its block, text and where it was written (a SourceRange). */
const entryOf = (e: CidrEntry): SourceRange => ({ cidr: e.cidr, text: e.text, source: e.source, path: e.path });

const LINK_LOCAL: Record<Family, ExemptRange> = { ipv4: builtIn(LINK_LOCAL_V4), ipv6: builtIn(LINK_LOCAL_V6) };

/**
 * Turns a config and the flags into per-family decision tables: exempt ranges (link-local first,
 * then config order), masquerade and SNAT entries, and the source scope. The new lists appear only
 * when set, so a config without them builds exactly today's policy.
 */
export function buildPolicy(config: MasqConfig, options: PolicyOptions): Policy {
  const { enableIPv6, ...flags } = options;
  const family = (f: Family, masqLinkLocal: boolean): FamilyPolicy => {
    const ofFamily = <T extends CidrEntry>(list: readonly T[] | undefined): T[] => (list ?? []).filter((e) => e.cidr.family === f);
    const actions: ActionRange[] = [
      ...ofFamily(config.masqueradeCIDRs).map((e): ActionRange => ({ ...entryOf(e), action: { kind: 'masquerade' }, list: 'masqueradeCIDRs' })),
      ...ofFamily(config.snat).map((e): ActionRange => ({ ...entryOf(e), action: { kind: 'snat', toSource: e.toSource, toSourceText: e.toSourceText }, list: 'snat' })),
    ];
    const sources = ofFamily(config.masqueradeSourceCIDRs).map(entryOf);
    // An explicit entry for exactly the link-local block overrides the built-in one.
    const linkLocal = masqLinkLocal || actions.some((a) => a.text === LINK_LOCAL[f].text) ? [] : [LINK_LOCAL[f]];
    return {
      family: f,
      exempt: [...linkLocal, ...ofFamily(config.nonMasqueradeCIDRs).map((e): ExemptRange => ({ ...entryOf(e), reason: 'config' }))],
      ...flags,
      ...(actions.length > 0 ? { actions } : {}),
      // Once masqueradeSourceCIDRs is set, a family without entries of its own translates nothing.
      ...((config.masqueradeSourceCIDRs ?? []).length > 0 ? { sources } : {}),
    };
  };
  const families = [family('ipv4', config.masqLinkLocal)];
  if (enableIPv6) families.push(family('ipv6', config.masqLinkLocalIPv6));
  return { families };
}

/** Why a destination is or is not masqueraded. */
export type Verdict =
  | { readonly masquerade: false; readonly reason: 'local' | 'family-disabled'; readonly family: Family }
  | { readonly masquerade: false; readonly reason: 'exempt'; readonly family: Family; readonly match: Decision; readonly overrides?: Decision }
  | { readonly masquerade: false; readonly reason: 'source-out-of-scope'; readonly family: Family; readonly sources: readonly SourceRange[] }
  | { readonly masquerade: true; readonly reason: 'default'; readonly family: Family; readonly randomFully: boolean; readonly toPorts: readonly PortRange[] }
  | {
      readonly masquerade: true;
      readonly reason: 'masquerade-cidr' | 'snat';
      readonly family: Family;
      readonly match: Decision;
      /** The shorter matching prefix this entry wins over, if any. */
      readonly overrides?: Decision;
      readonly randomFully: boolean;
      readonly toPorts: readonly PortRange[];
    };

/**
 * Decides, as the rules do, what happens to traffic from a pod (or from `source`, when given) to
 * `ip`: local destinations never reach our chain; the longest matching prefix decides (with only
 * exempt ranges: any exempt range that contains it); everything else is masqueraded. With
 * masqueradeSourceCIDRs, a source outside them is never translated.
 */
export function explainDestination(policy: Policy, ip: IpAddress, isLocal: (ip: IpAddress) => boolean = () => false, source?: IpAddress): Verdict {
  const fp = policy.families.find((f) => f.family === ip.family);
  if (!fp) return { masquerade: false, reason: 'family-disabled', family: ip.family };
  if (isLocal(ip)) return { masquerade: false, reason: 'local', family: ip.family };
  const table = decisionTable(fp);
  const match = resolveDestination(table, ip);
  // The longest shorter prefix that matches too: the one this match wins over.
  const shorter = match === undefined ? [] : table.filter((r) => r.cidr.prefix < match.cidr.prefix);
  const overrides = resolveDestination(shorter, ip);
  const over = overrides === undefined ? {} : { overrides };
  if (match !== undefined && match.action.kind === 'keep') return { masquerade: false, reason: 'exempt', family: ip.family, match, ...over };
  if (source !== undefined && !sourceInScope(fp, source)) return { masquerade: false, reason: 'source-out-of-scope', family: ip.family, sources: fp.sources ?? [] };
  const ports = { randomFully: fp.randomFully, toPorts: fp.toPorts };
  if (match === undefined) return { masquerade: true, reason: 'default', family: ip.family, ...ports };
  return { masquerade: true, reason: match.list === 'snat' ? 'snat' : 'masquerade-cidr', family: ip.family, match, ...over, ...ports };
}
