// What the decision-counter tests share: the policy the integration test applies and counts
// traffic through, and where it keeps the listings it captured (read by the unit tests).
import { fixturePath } from '../fixtures/go-tsv.js';
import type { FamilyPolicy } from '../../src/policy/types.js';
import { exempt } from './iptables-helpers.js';

/** Policies whose counters the tests read. */
export const COUNTED_POLICIES = {
  /** Link-local, 10.0.0.0/8 (the exempt outside address) and 198.51.100.0/24 keep the pod IP; the rest is masqueraded. */
  plain: {
    family: 'ipv4',
    exempt: [exempt('169.254.0.0/16', 'link-local'), exempt('10.0.0.0/8'), exempt('198.51.100.0/24')],
    randomFully: true,
    toPorts: [],
  },
} as const satisfies Record<string, FamilyPolicy>;

/** The captured counter listing of a backend (`iptables-nft.txt`, `nftables.txt`). */
export function countersFixturePath(backend: string): string {
  return fixturePath(`counters/${backend}.txt`);
}
