// Reads connections per decision from whichever backend wrote the rules, by the backend's name:
// what `status` shows per CIDR and what /metrics totals (observe/decision-counts.ts).
import type { Runner } from '../exec/runner.js';
import type { DecisionCount, FamilyPolicy } from '../policy/types.js';
import { readIptablesCounters } from './iptables/counters.js';
import { readNftCounters } from './nftables/counters.js';

/** Options of readDecisionCounts: what the backend was built with. */
export interface DecisionCountOptions {
  /** The backend's name: `iptables-nft`, `iptables-legacy` or `nftables`; any other has no counters. */
  readonly backend: string;
  /** The iptables chain (`--masq-chain`). */
  readonly chain: string;
}

/** The counts of every family of `policies` (one command per family, one for nft); undefined when the backend keeps none. */
export async function readDecisionCounts(run: Runner, policies: readonly FamilyPolicy[], o: DecisionCountOptions): Promise<DecisionCount[] | undefined> {
  if (o.backend === 'nftables') return readNftCounters(run, policies);
  const mode = o.backend === 'iptables-nft' ? 'nft' : o.backend === 'iptables-legacy' ? 'legacy' : undefined;
  if (mode === undefined) return undefined;
  const counts: DecisionCount[] = [];
  for (const p of policies) counts.push(...(await readIptablesCounters(run, mode, p, o.chain)));
  return counts;
}
