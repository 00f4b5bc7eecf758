// The canonical text lines that stand for one family's state in our table. Both sides of the
// drift check produce them: expectedNftLines() from a policy, parseNftJson() from `nft -j` output.
// Handles and counters are left out, so only a difference in meaning shows as drift.
import type { NftFamilyNames } from './names.js';

/** `set nonmasq4 type ipv4_addr flags interval`. */
export function setLine(name: string, type: string, flags: readonly string[]): string {
  return flags.length ? `set ${name} type ${type} flags ${flags.join(',')}` : `set ${name} type ${type}`;
}

/** `element nonmasq4 10.0.0.0/8`. */
export function elementLine(set: string, text: string): string {
  return `element ${set} ${text}`;
}

/** `chain postrouting4 type nat hook postrouting prio 100 policy accept`; a regular chain is just `chain NAME`. */
export function chainLine(name: string, base?: { readonly type: string; readonly hook: string; readonly prio: number; readonly policy: string }): string {
  return base ? `chain ${name} type ${base.type} hook ${base.hook} prio ${base.prio} policy ${base.policy}` : `chain ${name}`;
}

/** `rule postrouting4 ip daddr @nonmasq4 return`. */
export function ruleLine(chain: string, text: string): string {
  return `rule ${chain} ${text}`;
}

/** The set line our render creates for a family. */
export function ourSetLine(names: NftFamilyNames): string {
  return setLine(names.set, names.setType, ['counter', 'interval']);
}
