// The iptables backend (nft or legacy flavour). read lists nat POSTROUTING and our chain, never the
// whole table (`iptables-save -t nat` costs over a second next to a big kube-proxy, `-S POSTROUTING`
// a few ms; netfilter-facts.md). apply lists POSTROUTING again wherever it changed, so a repair that
// does not take fails the sync instead of being repeated at every one.
import { memoByObject, type Backend, type BackendFacts, type RenderedPayload } from '../backend.js';
import { iptablesLeftover } from '../leftovers.js';
import { CommandError } from '../../errors.js';
import { isChainIncompatible, isChainMissing } from '../../exec/runner.js';
import type { Family } from '../../net/cidr.js';
import type { DecisionCount, FamilyPolicy } from '../../policy/types.js';
import { parseIptablesCounters } from './counters.js';
import { exemptionIsFinal } from '../../policy/build.js';
import { createIptablesCommands, IptablesRestoreError, outputLines, type IptablesBackendOptions, type IptablesCommands } from './commands.js';
import { ownedLines, planIptables, planPostrouting, repairNotTaken, type IptablesObserved, type IptablesPlan, type RenamedJump } from './plan.js';
import { deleteSpec, findJumps, findRenamedJumps, judgeRenamedChain, mayBeOurChain, natPayload, renamedRemovalLines } from './rules.js';
import { FOLLOW_DEPTH, MAX_FOLLOWED_CHAINS } from '../shadow-owner.js';
import { chainsToFollow } from './shadow.js';
import { checkChainName, jumpRuleSpec, renderRestorePayload, renderSaveLines, type RenderOptions } from './render.js';

export { IptablesRestoreError, type IptablesBackendOptions };
export type { IptablesObserved, IptablesPlan } from './plan.js';

/** A lone `!` is safe in every shell; quoting it would invite bash's history expansion. */
function shellQuote(word: string): string {
  return word === '!' || /^[A-Za-z0-9_.:/=,@%+-]+$/.test(word) ? word : `"${word.replace(/(["\\$`])/g, '\\$1')}"`;
}

// Stops a cleanup loop if jumps keep coming back (another agent adding them as fast as we delete).
const MAX_JUMP_ROUNDS = 10;

/** The chains that rules with our jump's comment in `listing` lead to, each listed and judged; none on a quiet sync. */
async function inspectRenamed(cmd: IptablesCommands, family: Family, listing: readonly string[], chain: string): Promise<RenamedJump[]> {
  const found: RenamedJump[] = [];
  for (const { line, target } of findRenamedJumps(listing, chain)) {
    const r = target !== undefined && mayBeOurChain(target) ? await cmd.list(family, target) : undefined;
    const rules = r?.exitCode === 0 ? outputLines(r.stdout) : undefined;
    found.push({ line, target: target ?? '(none)', verdict: judgeRenamedChain(target, rules) });
  }
  return found;
}

/** The `-S` lines of the chains the shadow check follows below POSTROUTING, level by level, bounded (shadow.ts). */
async function readFollowed(cmd: IptablesCommands, family: Family, postrouting: readonly string[], chain: string): Promise<Record<string, string[]>> {
  const followed: Record<string, string[]> = {};
  let next = chainsToFollow(postrouting, 'POSTROUTING', chain);
  for (let depth = 0; depth < FOLLOW_DEPTH && next.length > 0; depth++) {
    const batch = next.filter((c) => followed[c] === undefined).slice(0, MAX_FOLLOWED_CHAINS - Object.keys(followed).length);
    // A chain that cannot be listed (gone meanwhile) holds nothing that translates.
    const listed = await Promise.all(batch.map(async (c) => cmd.list(family, c)));
    batch.forEach((c, i) => (followed[c] = listed[i]?.exitCode === 0 ? outputLines(listed[i].stdout) : []));
    next = batch.flatMap((c) => chainsToFollow(followed[c] ?? [], c, chain));
  }
  return followed;
}

/** Reads one family: POSTROUTING and, with `listOwned`, our chain, at once; then the renamed chains. */
async function readFamily(cmd: IptablesCommands, chain: string, family: Family, listOwned: boolean): Promise<IptablesObserved> {
  const [list, postrouting] = await Promise.all([listOwned ? cmd.list(family, chain) : undefined, cmd.postrouting(family)]);
  let chainLines: string[] | undefined;
  if (list === undefined || list.exitCode === 0) chainLines = list && outputLines(list.stdout);
  else if (
    isChainMissing(list) ||
    // iptables-nft 1.8.9 calls a missing chain "incompatible"; the -C probe confirms it is absent.
    (isChainIncompatible(list) && findJumps(postrouting, chain).length === 0 && (await cmd.probeJump(family)).exitCode === 2)
  ) {
    chainLines = [];
  } else throw cmd.failed(list);
  const [renamed, followed] = await Promise.all([inspectRenamed(cmd, family, postrouting, chain), readFollowed(cmd, family, postrouting, chain)]);
  const owned = chainLines === undefined ? undefined : ownedLines(postrouting, chainLines, renamed, chain);
  return { family, owned, postrouting, chain: chainLines, renamed, followed };
}

/**
 * Before our jump is added where a listing showed none although our chain may be there: `-C` asks
 * the kernel itself, so a listing that lost lines never adds a second jump (nor one per sync).
 */
async function refuseHiddenJump(cmd: IptablesCommands, family: Family, chain: string): Promise<void> {
  const { exitCode, stderr, argv } = await cmd.probeJump(family);
  if (exitCode === 0) {
    const why = `-S POSTROUTING showed no jump to ${chain}, but ${argv.join(' ')} finds ours: the listing lost lines (a wrapper around ${cmd.tool(family)}?); not adding a second jump`;
    throw new CommandError(argv, 0, stderr, 'other', why);
  }
}

/**
 * Runs a plan that is not up to date: the probe, the one restore, the listing that verifies
 * POSTROUTING. A `-D` of a rule deleted since the read makes the restore refuse it all: the chain
 * then goes alone, and POSTROUTING is read and planned again for a restore of its own.
 */
async function applyPlan(cmd: IptablesCommands, plan: IptablesPlan): Promise<void> {
  const { family, chain } = plan;
  if (plan.upToDate) return;
  if (plan.probeJump) await refuseHiddenJump(cmd, family, chain);
  let verify = plan.verify;
  let failure = plan.failure;
  try {
    await cmd.restore(family, plan.payload);
  } catch (e) {
    if (plan.fallback === undefined || verify === undefined || !(e instanceof IptablesRestoreError)) throw e;
    await cmd.restore(family, plan.fallback);
    const listed = await cmd.postrouting(family);
    const again = planPostrouting(listed, await inspectRenamed(cmd, family, listed, chain), chain, verify.first);
    failure = again.failure;
    verify = again.lines.length > 0 ? { first: verify.first, removed: again.removed } : undefined;
    try {
      if (again.addsJump) await refuseHiddenJump(cmd, family, chain);
      if (again.lines.length > 0) await cmd.restore(family, natPayload(again.lines));
    } catch (e2) {
      if (!(e2 instanceof CommandError)) throw e2;
      throw e2.restate(`${again.repairs.join(', ')} failed; the chain ${chain} is up to date: ${e2.message}`);
    }
  }
  if (verify !== undefined) {
    const found = repairNotTaken(await cmd.postrouting(family), chain, verify);
    if (found !== undefined) {
      throw new Error(
        `${cmd.name}: the repair of nat POSTROUTING did not take: listed after it, POSTROUTING shows ${found}, where exactly one jump, ours${verify.first ? ' and first' : ''}, was written; ` +
          'not repeating it (does another program rewrite POSTROUTING, or does the listing lose lines?)',
      );
    }
  }
  if (failure !== undefined) throw new Error(failure);
}

/** Creates the iptables backend for one mode; its name is `iptables-nft` or `iptables-legacy`. */
export function createIptablesBackend(opts: IptablesBackendOptions): Backend<IptablesObserved, IptablesPlan> {
  const problem = checkChainName(opts.chain);
  if (problem) throw new Error(`invalid iptables chain name: ${problem}`);
  const { runner, mode, chain } = opts;
  const cmd = createIptablesCommands(opts);
  const name = cmd.name;
  const renderOptions = (policy: FamilyPolicy): RenderOptions => ({
    chain,
    randomFully: policy.randomFully && opts.randomFullySupported,
  });
  const wanted = memoByObject((policy: FamilyPolicy) => renderSaveLines(policy, renderOptions(policy)));

  const backend: Backend<IptablesObserved, IptablesPlan> = {
    name,

    expected: wanted,

    render(policy: FamilyPolicy): RenderedPayload {
      // The commands as an operator types them: the plain names pick the host's variant.
      const ip = policy.family === 'ipv4' ? 'iptables' : 'ip6tables';
      const first = exemptionIsFinal(policy);
      const jump = [ip, '-t', 'nat', ...(first ? ['-I', 'POSTROUTING', '1'] : ['-A', 'POSTROUTING']), ...jumpRuleSpec(chain)];
      return {
        family: policy.family,
        command: `${ip}-restore --noflush`,
        payload: renderRestorePayload(policy, renderOptions(policy)),
        followUp: { command: jump.map(shellQuote).join(' '), when: first ? 'keep-first' : 'if-missing' },
      };
    },

    describe(): BackendFacts {
      return {
        dialect: 'iptables',
        randomFullySupported: opts.randomFullySupported,
        ...(opts.detected === undefined ? {} : { modeReason: opts.detected.reason, version: opts.detected.version }),
      };
    },

    leftovers() {
      return (['ipv4', 'ipv6'] as const).map((family) => iptablesLeftover(runner, mode, family, chain, () => backend.cleanup(family)));
    },

    async counters(policies) {
      const counts: DecisionCount[] = [];
      for (const p of policies) counts.push(...parseIptablesCounters(await cmd.counters(p.family), p, chain));
      return counts;
    },

    read: (family, options) => readFamily(cmd, chain, family, options?.owned !== false),

    plan: (observed, policy) => planIptables(observed, policy, renderOptions(policy), wanted(policy)),

    apply: (plan) => applyPlan(cmd, plan),

    async cleanup(family: Family): Promise<void> {
      // Every form at once (ours, older releases', duplicates, bare); again if more came meanwhile.
      let listing: string[];
      for (let round = 0; ; round++) {
        listing = await cmd.postrouting(family);
        const jumps = findJumps(listing, chain).map((r) => r.line);
        if (jumps.length === 0) break;
        if (round >= MAX_JUMP_ROUNDS) {
          throw new CommandError([], null, '', 'other', `${name}: POSTROUTING jumps to ${chain} still present after ${MAX_JUMP_ROUNDS} rounds of deletes (does another agent keep adding them?)`);
        }
        await cmd.restore(family, natPayload(jumps.map(deleteSpec)));
      }
      await cmd.chainCommand(family, '-F');
      await cmd.chainCommand(family, '-X');
      // Our chain renamed still masquerades: it goes too. A chain that is not clearly ours stays.
      const ours = (await inspectRenamed(cmd, family, listing, chain)).filter((r) => r.verdict.ours);
      const lines = ours.flatMap((r) => renamedRemovalLines(r.line, r.target));
      if (lines.length > 0) await cmd.restore(family, natPayload(lines));
    },
  };
  return backend;
}
