// `ip-masq-agent cleanup [flags]` (its help says what it removes): it removes what every backend
// form lists as its leftovers (Backend.leftovers, gathered by select.ts). Idempotent.
import type { CleanupTarget, Inspection } from '../backends/backend.js';
import { NFT_TABLE_REF } from '../backends/nftables/names.js';
import { defaultCleanupTargets } from '../backends/select.js';
import { errorMessage } from '../errors.js';
import { defineCommand } from './command-shape.js';
import { EXIT, writeJson } from './command.js';

const HELP = {
  usage: 'ip-masq-agent cleanup [flags]',
  description: `Removes everything the agent creates in the current network namespace: every POSTROUTING rule
that jumps to the chain named by --masq-chain (default IP-MASQ-AGENT), in any form (also older reference
releases' and duplicates), and the chain itself, for IPv4 and IPv6, in iptables-nft and in iptables-legacy (each
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
};

/** What happened at one target. */
interface Outcome {
  readonly target: string;
  readonly result: 'removed' | 'absent' | 'skipped' | 'left' | 'error';
  readonly detail?: string;
}

async function cleanTarget(t: CleanupTarget): Promise<Outcome> {
  let before: Inspection;
  try {
    before = await t.inspect();
  } catch (e) {
    return { target: t.name, result: 'error', detail: `cannot check: ${errorMessage(e)}` };
  }
  if (before.state === 'absent') return { target: t.name, result: 'absent' };
  if (before.state === 'skipped') return { target: t.name, result: 'skipped', detail: before.why };
  try {
    await t.remove();
    const after = await t.inspect();
    if (after.state === 'present') return { target: t.name, result: 'left', detail: `still there after removal: ${after.what}` };
  } catch (e) {
    return { target: t.name, result: 'error', detail: `cannot remove ${before.what}: ${errorMessage(e)}` };
  }
  return { target: t.name, result: 'removed', detail: before.what };
}

/** Runs `cleanup`; exit 0 nothing left, 1 something left or not checked, 2 usage error. */
export const runCleanup = defineCommand({
  name: 'cleanup',
  help: HELP,
  agentFlags: ['masq-chain'],
  run: async ({ opts, output, io, deps }) => {
    const targets = (deps.targets ?? defaultCleanupTargets)(opts.chain, deps.runner);
    const outcomes: Outcome[] = [];
    // One at a time: the iptables commands share the xtables lock anyway.
    for (const t of targets) outcomes.push(await cleanTarget(t));
    const clean = outcomes.every((o) => o.result !== 'left' && o.result !== 'error');

    if (output === 'json') {
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
  },
});
