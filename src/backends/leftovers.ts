// What the iptables and nftables backends may leave in a network namespace, as targets that can
// be inspected without side effects and removed: our iptables chain and jump (per variant and
// family) and the nft table. Each backend lists its own through Backend.leftovers(); `cleanup`
// takes them all, start-up all but the backend in use (see select.ts).
import { CommandError } from '../errors.js';
import { isNftObjectMissing, type Runner } from '../exec/runner.js';
import type { Family } from '../net/cidr.js';
import type { CleanupTarget } from './backend.js';
import type { IptablesMode } from './iptables/detect.js';
import { findRenamedJumps, judgeRenamedChain, parseRuleLine } from './iptables/rules.js';
import { NFT_TABLE_REF } from './nftables/names.js';

export type { CleanupTarget, Inspection } from './backend.js';

/** The lines of a `*-save` output's nat table: the output holds every table, and only `*nat` counts. */
export function natLines(save: string): string[] {
  let table = '';
  const nat: string[] = [];
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    else if (table === 'nat') nat.push(line);
  }
  return nat;
}

/** Our chain and jumps in a `*-save` output's nat lines (natLines); jumps by target, in any form. */
export function findInNat(nat: readonly string[], chain: string): { chain: boolean; rules: number; jumps: number } {
  const found = { chain: false, rules: 0, jumps: 0 };
  for (const line of nat) {
    if (line.startsWith(`:${chain} `)) found.chain = true;
    const rule = parseRuleLine(line);
    if (rule?.chain === chain) found.rules++;
    else if (rule?.chain === 'POSTROUTING' && rule.target === chain) found.jumps++;
  }
  return found;
}

/** The nat chains (natLines) ours under another name (`iptables -E`): a POSTROUTING rule with our jump's comment leads there, every rule in it ours. */
export function findRenamedInNat(nat: readonly string[], chain: string): string[] {
  const rulesOf = (t: string): string[] => nat.filter((l) => parseRuleLine(l)?.chain === t);
  return findRenamedJumps(nat, chain).flatMap(({ target: t }) => (t !== undefined && judgeRenamedChain(t, rulesOf(t)).ours ? [t] : []));
}

/** findInNat and findRenamedInNat of a whole `*-save` output. */
export const findInSaveOutput = (save: string, chain: string): ReturnType<typeof findInNat> => findInNat(natLines(save), chain);
export const findRenamedInSaveOutput = (save: string, chain: string): string[] => findRenamedInNat(natLines(save), chain);

/** Our chain and jump in one iptables variant and family; `remove` is that backend's cleanup of the family. */
export function iptablesLeftover(runner: Runner, mode: IptablesMode, family: Family, chain: string, remove: () => Promise<void>): CleanupTarget {
  const save = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}-save`;
  return {
    name: `iptables-${mode} ${family === 'ipv4' ? 'IPv4' : 'IPv6'}`,
    backend: `iptables-${mode}`,
    async inspect() {
      let out: string;
      try {
        // No `-t`: asking for a legacy table by name makes the kernel create it.
        out = (await runner([save], { timeoutMs: 30_000 })).stdout;
      } catch (e) {
        if (e instanceof CommandError && e.failure === 'not-installed') return { state: 'skipped', why: `${save} is not installed` };
        throw e;
      }
      const nat = natLines(out);
      const [f, renamed] = [findInNat(nat, chain), findRenamedInNat(nat, chain)];
      if (!f.chain && f.jumps === 0 && renamed.length === 0) return { state: 'absent' };
      const parts = [
        ...(f.jumps > 0 ? [`${f.jumps === 1 ? 'the jump' : `${f.jumps} jumps`} in POSTROUTING`] : []),
        ...(f.chain ? [`chain ${chain} (${f.rules} rule${f.rules === 1 ? '' : 's'})`] : []),
        ...renamed.map((t) => `chain ${t} (ours, renamed) and its jump`),
      ];
      return { state: 'present', what: parts.join(' and ') };
    },
    remove,
  };
}

/** Our nft table, whatever families it holds. */
export function nftLeftover(runner: Runner): CleanupTarget {
  return {
    name: 'nftables',
    backend: 'nftables',
    async inspect() {
      let out: string;
      try {
        out = (await runner(['nft', 'list', 'tables'], { timeoutMs: 30_000 })).stdout;
      } catch (e) {
        if (e instanceof CommandError && e.failure === 'not-installed') return { state: 'skipped', why: 'nft is not installed' };
        throw e;
      }
      return out.split('\n').some((l) => l.trim() === `table ${NFT_TABLE_REF}`) ? { state: 'present', what: `table ${NFT_TABLE_REF}` } : { state: 'absent' };
    },
    async remove() {
      try {
        await runner(['nft', 'delete', 'table', ...NFT_TABLE_REF.split(' ')], { timeoutMs: 30_000 });
      } catch (e) {
        // Gone in between (another cleanup): that is the goal.
        if (!(e instanceof CommandError && isNftObjectMissing(e))) throw e;
      }
    },
  };
}
