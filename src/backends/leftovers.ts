// What the backends may leave in a network namespace (our iptables chain and jump per variant and
// family, the nft table), inspected without side effects; `cleanup` takes them all, start-up all
// but the backend in use (select.ts).
import { CommandError } from '../errors.js';
import type { Runner } from '../exec/runner.js';
import type { Family } from '../net/cidr.js';
import type { CleanupTarget, Inspection } from './backend.js';
import type { IptablesMode } from './iptables/detect.js';
import { findJumps, findRenamedJumps, judgeRenamedChain } from './iptables/rules.js';
import { NFT_TABLE_REF } from './nftables/names.js';

/**
 * Our chain, its rules and the jumps to it (by target, in any form) in a `*-save` output's nat
 * table, and the chains there that are ours renamed (`iptables -E`): a POSTROUTING rule with our
 * jump's comment leads there, every rule in it ours.
 */
export function findInSaveOutput(save: string, chain: string) {
  // The output holds every table; only `*nat` counts.
  const lines = save.split('\n');
  const start = lines.findIndex((l) => l.trim() === '*nat') + 1;
  const end = lines.findIndex((l, i) => i >= start && l.startsWith('*'));
  const nat = start === 0 ? [] : lines.slice(start, end < 0 ? undefined : end);
  const rulesOf = (t: string): string[] => nat.filter((l) => l.startsWith(`-A ${t} `));
  const renamed = findRenamedJumps(nat, chain).flatMap(({ target: t }) => (t !== undefined && judgeRenamedChain(t, rulesOf(t)).ours ? [t] : []));
  return { chain: nat.some((l) => l.startsWith(`:${chain} `)), rules: rulesOf(chain).length, jumps: findJumps(nat, chain).length, renamed };
}

/** A place a backend may leave state; `judge` reads what `argv` (a look that changes nothing) printed, skipped when its tool is not installed. */
function leftover(runner: Runner, name: string, backend: string, argv: string[], judge: (out: string) => Inspection, remove: () => Promise<void>): CleanupTarget {
  return {
    name,
    backend,
    async inspect() {
      try {
        return judge((await runner(argv, { timeoutMs: 30_000 })).stdout);
      } catch (e) {
        if (e instanceof CommandError && e.failure === 'not-installed') return { state: 'skipped', why: `${argv[0]} is not installed` };
        throw e;
      }
    },
    remove,
  };
}

/** Our chain and jump in one iptables variant and family; `remove` is that backend's cleanup of the family. */
export function iptablesLeftover(runner: Runner, mode: IptablesMode, family: Family, chain: string, remove: () => Promise<void>): CleanupTarget {
  const save = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}-save`;
  const judge = (out: string): Inspection => {
    const f = findInSaveOutput(out, chain);
    if (!f.chain && f.jumps === 0 && f.renamed.length === 0) return { state: 'absent' };
    const parts = [
      ...(f.jumps > 0 ? [`${f.jumps === 1 ? 'the jump' : `${f.jumps} jumps`} in POSTROUTING`] : []),
      ...(f.chain ? [`chain ${chain} (${f.rules} rule${f.rules === 1 ? '' : 's'})`] : []),
      ...f.renamed.map((t) => `chain ${t} (ours, renamed) and its jump`),
    ];
    return { state: 'present', what: parts.join(' and ') };
  };
  // No `-t`: asking for a legacy table by name makes the kernel create it.
  return leftover(runner, `iptables-${mode} ${family === 'ipv4' ? 'IPv4' : 'IPv6'}`, `iptables-${mode}`, [save], judge, remove);
}

/** Our nft table, whatever families it holds; `remove` deletes it (gone in between is no failure). */
export function nftLeftover(runner: Runner, remove: () => Promise<void>): CleanupTarget {
  const present = (out: string) => out.split('\n').some((l) => l.trim() === `table ${NFT_TABLE_REF}`);
  return leftover(runner, 'nftables', 'nftables', ['nft', 'list', 'tables'], (out) => (present(out) ? { state: 'present', what: `table ${NFT_TABLE_REF}` } : { state: 'absent' }), remove);
}
