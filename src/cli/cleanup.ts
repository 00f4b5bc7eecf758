// `ip-masq-agent cleanup [flags]`: removes everything the agent ever creates in the current
// network namespace: the iptables chain and its POSTROUTING jump (IPv4 and IPv6, in both the nft
// and legacy iptables), and the nft table. Idempotent.
import { createIptablesBackend } from '../backends/iptables/iptables-backend.js';
import type { IptablesMode } from '../backends/iptables/detect.js';
import { NFT_TABLE_REF } from '../backends/nftables/names.js';
import { CommandError } from '../errors.js';
import type { Runner } from '../exec/runner.js';
import type { Family } from '../net/cidr.js';
import { agentOptionsFromFlags } from './agent-options.js';
import { EXIT, withUsageErrors, writeJson, type CommandDeps, type CommandIo } from './command.js';
import { OUTPUT_FLAG, commandFlagSpecs, formatCommandHelp, outputFormat, parseCommandArgs, rejectPositional } from './command-flags.js';

const SPECS = commandFlagSpecs(['masq-chain'], [OUTPUT_FLAG]);

/** `cleanup --help`. */
export const CLEANUP_HELP = formatCommandHelp(
  {
    usage: 'ip-masq-agent cleanup [flags]',
    description: `Removes everything the agent creates in the current network namespace: the POSTROUTING jump
and the chain named by --masq-chain (default IP-MASQ-AGENT), for IPv4 and IPv6, in iptables-nft and in iptables-legacy (each
where it is installed; legacy is only touched when its save output shows the chain, so no legacy
table is created), and the nft table ${NFT_TABLE_REF}. Safe to run again: what is absent is
left alone. Stop the agent first (delete its DaemonSet), or it puts the rules back.
Exit status: 0 nothing of the agent's is left, 1 something could not be removed or checked,
2 usage error.`,
    examples: [
      'kubectl -n kube-system delete ds ip-masq-agent   # first, so nothing re-creates the rules',
      'ip-masq-agent cleanup                             # then on each node (e.g. in kubectl debug node/NAME)',
      'ip-masq-agent cleanup --masq-chain=MY-MASQ --output json',
    ],
  },
  SPECS,
);

/** What a target holds now. */
export type Inspection =
  | { readonly state: 'absent' }
  | { readonly state: 'present'; readonly what: string }
  | { readonly state: 'skipped'; readonly why: string };

/** One place the agent may have left state, e.g. `iptables-nft IPv4` or `nftables`. */
export interface CleanupTarget {
  readonly name: string;
  /** Looks without changing anything (and without making the kernel create a table). */
  inspect(): Promise<Inspection>;
  /** Removes what inspect() found. */
  remove(): Promise<void>;
}

/** cleanup's dependencies: the command deps, plus the targets tests can replace. */
export interface CleanupDeps extends CommandDeps {
  readonly targets?: (chain: string, runner: Runner) => CleanupTarget[];
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Our chain and jumps in a `*-save` output (all tables; only `*nat` counts). */
export function findInSaveOutput(save: string, chain: string): { chain: boolean; rules: number; jumps: number } {
  const jump = new RegExp(`^-A POSTROUTING .*-j ${escapeRegExp(chain)}(\\s|$)`);
  let table = '';
  const found = { chain: false, rules: 0, jumps: 0 };
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    if (table !== 'nat') continue;
    if (line.startsWith(`:${chain} `)) found.chain = true;
    else if (line.startsWith(`-A ${chain} `)) found.rules++;
    else if (jump.test(line)) found.jumps++;
  }
  return found;
}

function iptablesTarget(runner: Runner, mode: IptablesMode, family: Family, chain: string): CleanupTarget {
  const save = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}-save`;
  return {
    name: `iptables-${mode} ${family === 'ipv4' ? 'IPv4' : 'IPv6'}`,
    async inspect() {
      let out: string;
      try {
        // No `-t`: asking for a legacy table by name makes the kernel create it.
        out = (await runner([save], { timeoutMs: 30_000 })).stdout;
      } catch (e) {
        if (e instanceof CommandError && e.failure === 'not-installed') return { state: 'skipped', why: `${save} is not installed` };
        throw e;
      }
      const f = findInSaveOutput(out, chain);
      if (!f.chain && f.jumps === 0) return { state: 'absent' };
      const parts = [
        ...(f.jumps > 0 ? [`${f.jumps === 1 ? 'the jump' : `${f.jumps} jumps`} in POSTROUTING`] : []),
        ...(f.chain ? [`chain ${chain} (${f.rules} rule${f.rules === 1 ? '' : 's'})`] : []),
      ];
      return { state: 'present', what: parts.join(' and ') };
    },
    async remove() {
      await createIptablesBackend({ runner, mode, chain, randomFullySupported: true }).cleanup(family);
    },
  };
}

function nftTarget(runner: Runner): CleanupTarget {
  return {
    name: 'nftables',
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
        if (!(e instanceof CommandError && /No such file or directory/.test(e.stderr))) throw e;
      }
    },
  };
}

/** Every place the agent may leave state: iptables nft and legacy, both families, then nftables. */
export function defaultCleanupTargets(chain: string, runner: Runner): CleanupTarget[] {
  const targets: CleanupTarget[] = [];
  for (const mode of ['nft', 'legacy'] as const) {
    for (const family of ['ipv4', 'ipv6'] as const) targets.push(iptablesTarget(runner, mode, family, chain));
  }
  targets.push(nftTarget(runner));
  return targets;
}

/** What happened at one target. */
interface Outcome {
  readonly target: string;
  readonly result: 'removed' | 'absent' | 'skipped' | 'left' | 'error';
  readonly detail?: string;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function cleanTarget(t: CleanupTarget): Promise<Outcome> {
  let before: Inspection;
  try {
    before = await t.inspect();
  } catch (e) {
    return { target: t.name, result: 'error', detail: `cannot check: ${errorText(e)}` };
  }
  if (before.state === 'absent') return { target: t.name, result: 'absent' };
  if (before.state === 'skipped') return { target: t.name, result: 'skipped', detail: before.why };
  try {
    await t.remove();
    const after = await t.inspect();
    if (after.state === 'present') return { target: t.name, result: 'left', detail: `still there after removal: ${after.what}` };
  } catch (e) {
    return { target: t.name, result: 'error', detail: `cannot remove ${before.what}: ${errorText(e)}` };
  }
  return { target: t.name, result: 'removed', detail: before.what };
}

/** Runs `cleanup`; exit 0 nothing left, 1 something left or not checked, 2 usage error. */
export async function runCleanup(argv: readonly string[], io: CommandIo, deps: CleanupDeps): Promise<number> {
  return withUsageErrors(io, 'cleanup', async () => {
    const flags = parseCommandArgs(argv, SPECS);
    if (flags.help) {
      io.stdout(CLEANUP_HELP);
      return EXIT.ok;
    }
    const opts = agentOptionsFromFlags(flags);
    rejectPositional(flags, 'cleanup');
    const targets = (deps.targets ?? defaultCleanupTargets)(opts.chain, deps.runner);
    const outcomes: Outcome[] = [];
    // One at a time: the iptables commands share the xtables lock anyway.
    for (const t of targets) outcomes.push(await cleanTarget(t));
    const clean = outcomes.every((o) => o.result !== 'left' && o.result !== 'error');

    if (outputFormat(flags) === 'json') {
      const pick = (r: Outcome['result']) => outcomes.filter((o) => o.result === r).map((o) => ({ target: o.target, ...(o.detail === undefined ? {} : { detail: o.detail }) }));
      writeJson(io, { clean, chain: opts.chain, removed: pick('removed'), absent: pick('absent').map((o) => o.target), skipped: pick('skipped'), left: [...pick('left'), ...pick('error')] });
    } else {
      for (const o of outcomes) {
        if (o.result === 'removed') io.stdout(`removed ${o.detail} (${o.target})\n`);
        if (o.result === 'skipped') io.stdout(`skipped ${o.target}: ${o.detail}\n`);
        if (o.result === 'left' || o.result === 'error') io.stderr(`ip-masq-agent cleanup: ${o.target}: ${o.detail}\n`);
      }
      const absent = outcomes.filter((o) => o.result === 'absent').map((o) => o.target);
      if (absent.length > 0) io.stdout(`nothing to remove in: ${absent.join(', ')}\n`);
      io.stdout(clean ? `clean: nothing of ip-masq-agent (chain ${opts.chain}, table ${NFT_TABLE_REF}) is left\n` : 'not clean: see the errors above\n');
    }
    return clean ? EXIT.ok : EXIT.failed;
  });
}
