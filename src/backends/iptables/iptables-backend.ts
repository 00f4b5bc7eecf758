// The iptables backend (nft or legacy flavour): one `iptables-restore --noflush` payload per
// family and sync, and the POSTROUTING jump put right: added when missing, and every other rule
// that jumps to our chain (an older release's form, a duplicate, a bare jump) replaced by ours,
// on nft in one more restore after the chain's, on legacy inside the chain's restore (legacy
// lists POSTROUTING before it). Reads back only our chain and POSTROUTING: a full
// `iptables-save -t nat` costs over a second next to a big kube-proxy, `-S POSTROUTING` a few ms
// (netfilter-facts.md). What else decides traffic on our behalf is read too: a POSTROUTING rule
// with our jump's comment that leads to another chain is our chain renamed (`iptables -E`), deleted
// with that chain when every rule in it is ours, else a failed sync. A POSTROUTING listing without
// its policy line is a failed read, a jump is added only when `-C` agrees none is there, and every
// change to POSTROUTING is verified by a listing after it: a repair that does not take fails the
// sync instead of being repeated at every one.
import { sameState, type Backend, type BackendFacts, type Observed, type OwnedState, type Plan, type RenderedPayload } from '../backend.js';
import { iptablesLeftover } from '../leftovers.js';
import { CommandError, restated } from '../../errors.js';
import { cutExcerpt, quoteExcerpt } from '../../excerpt.js';
import { isChainIncompatible, isChainInUse, isChainMissing, isTargetMissing, restoreFailedLine, saidByIptables, type CommandResult, type Runner } from '../../exec/runner.js';
import type { Family } from '../../net/cidr.js';
import type { FamilyPolicy } from '../../policy/types.js';
import { exemptionIsFinal } from '../../policy/build.js';
import { DEFAULT_WAIT_SECONDS, KUBE_MARK_COMMENT, NOT_FIRST_NOTE, RENAMED_NOTE } from './constants.js';
import { findShadowingRules } from './shadow.js';
import type { IptablesMode } from './detect.js';
import {
  findRenamedJumps,
  findRulesWithTarget,
  judgeRenamedChain,
  jumpRepairLines,
  mayBeOurChain,
  notFirstLine,
  planJumpRepair,
  quoteRuleArg,
  natPayload,
  renamedRemovalLines,
  renderDeletePayload,
  type RenamedChainVerdict,
} from './rules.js';
import { checkChainName, jumpRuleSpec, renderJumpSaveLine, renderRestorePayload, renderSaveLines, type RenderOptions } from './render.js';

/** What the iptables backend needs; only runner, mode, chain and randomFullySupported are required. */
export interface IptablesBackendOptions {
  readonly runner: Runner;
  readonly mode: IptablesMode;
  /** The nat chain name (`--masq-chain`). */
  readonly chain: string;
  /** Whether the installed iptables knows `--random-fully` (see supportsRandomFully). */
  readonly randomFullySupported: boolean;
  /** `-w` seconds each command may wait for the xtables lock; default 5. */
  readonly waitSeconds?: number;
  /** Extra attempts after a command found the lock busy; default 2 (3 tries in all). */
  readonly lockRetries?: number;
  /** Pause before the first retry, doubled before each further one; default 250 ms. */
  readonly retryDelayMs?: number;
  /** Per-command timeout; default the runner's (30 s unless --command-timeout: well above `-w` plus the slowest measured restore). */
  readonly timeoutMs?: number;
  /** Injected so unit tests drive retries without waiting. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** What detection found (why this mode, which version), for describe(). */
  readonly detected?: { readonly reason: string; readonly version: string };
}

/** A lone `!` is safe in every shell; quoting it would invite bash's history expansion. */
function shellQuote(word: string): string {
  return word === '!' || /^[A-Za-z0-9_.:/=,@%+-]+$/.test(word) ? word : `"${word.replace(/(["\\$`])/g, '\\$1')}"`;
}

/** A restore payload that iptables refused; the chain is unchanged (restore is all-or-nothing). */
export class IptablesRestoreError extends CommandError {
  constructor(
    base: CommandError,
    /** 1-based payload line iptables named, when it named one. */
    readonly line: number | undefined,
    /** That line's text. */
    readonly lineText: string | undefined,
    /** The whole payload, for logs and reports. */
    readonly payload: string,
  ) {
    const where = line === undefined ? '' : ` at payload line ${line}${lineText === undefined ? '' : ` (${cutExcerpt(lineText)})`}`;
    const why = saidByIptables(base.stderr) || base.message;
    super(base.argv, base.exitCode, base.stderr, base.failure, `${base.argv.join(' ')} refused the payload${where}: ${why}`, restated(base));
  }
}

// Stops a cleanup loop if jumps keep coming back (another agent adding them as fast as we delete).
const MAX_JUMP_ROUNDS = 10;
const IN_USE_HINT = 'a rule outside POSTROUTING still jumps to the chain; delete that rule, then run cleanup again';

/** A POSTROUTING rule with our jump's comment that leads to another chain, and what that chain is. */
interface RenamedJump {
  /** The rule as `-S POSTROUTING` printed it. */
  readonly line: string;
  /** The chain it leads to. */
  readonly target: string;
  readonly verdict: RenamedChainVerdict;
}

/** The read-back's note on a renamed jump: what it leads to, and what the sync does about it. */
function renamedNote(r: RenamedJump): string {
  return r.verdict.ours
    ? `${RENAMED_NOTE} ${r.target} (${r.verdict.rules} rule${r.verdict.rules === 1 ? '' : 's'}, all ours: our chain renamed); the sync deletes that rule and chain`
    : `${RENAMED_NOTE} ${r.target}, not ours (${r.verdict.why}); the agent leaves it, and its syncs fail until it is removed`;
}

/** The error that fails a sync while a rule with our jump's comment leads to a chain that is not clearly ours. */
function foreignRenamedError(r: RenamedJump, chain: string): Error {
  const why = r.verdict.ours ? '' : r.verdict.why;
  return new Error(
    `nat POSTROUTING rule ${cutExcerpt(r.line, 240)} carries our jump's comment but leads to ${r.target}, not ${chain}, and ${why}: ` +
      'the agent does not touch it, and traffic meets it beside our chain; delete that rule (and its chain) by hand',
  );
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function outputLines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

/** What the iptables backend's read() saw: our chain and jump as `-S` lines, and the rules that translate before our jump. */
export interface IptablesObserved extends Observed {
  readonly shadowing: readonly string[];
}

/** What the iptables backend's apply() runs. */
export interface IptablesPlan extends Plan {
  readonly policy: FamilyPolicy;
  readonly seen: OwnedState | undefined;
}

/** Creates the iptables backend for one mode; its name is `iptables-nft` or `iptables-legacy`. */
export function createIptablesBackend(opts: IptablesBackendOptions): Backend<IptablesObserved, IptablesPlan> {
  const problem = checkChainName(opts.chain);
  if (problem) throw new Error(`invalid iptables chain name: ${problem}`);
  const { runner, mode, chain } = opts;
  const wait = String(opts.waitSeconds ?? DEFAULT_WAIT_SECONDS);
  const lockRetries = opts.lockRetries ?? 2;
  const retryDelayMs = opts.retryDelayMs ?? 250;
  const timeout = opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs };
  const sleep = opts.sleep ?? defaultSleep;
  const name = `iptables-${mode}`;
  /**
   * The POSTROUTING listing that read or apply just took, per family, taken once by findShadowing
   * in the same sync: a quiet resync then lists POSTROUTING once, not twice (on legacy each
   * listing reads the whole nat table).
   */
  const lastPostrouting = new Map<Family, string[]>();
  /** The last `-S CHAIN` output and its lines, per family: an unchanged chain is not split again. */
  const lastChain = new Map<Family, { readonly stdout: string; readonly lines: string[] }>();
  /** The last state read, per family: an unchanged read returns the same array, so callers can compare by identity. */
  const lastRead = new Map<Family, OwnedState>();
  /** Legacy: the POSTROUTING listing prepareSync started, per family, for the read or apply that follows. */
  const prepared = new Map<Family, Promise<string[]>>();

  const tool = (family: Family, suffix: '' | '-save' | '-restore' = ''): string => `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}${suffix}`;
  const nat = (family: Family, ...args: string[]): string[] => [tool(family), '-w', wait, '-t', 'nat', ...args];
  const renderOptions = (policy: FamilyPolicy): RenderOptions => ({
    chain,
    randomFully: policy.randomFully && opts.randomFullySupported,
  });

  /** Runs one command, retrying while the xtables lock is busy; every call has a timeout. */
  async function run(argv: string[], extra: { input?: string; okExitCodes?: number[] } = {}): Promise<CommandResult> {
    let delay = retryDelayMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await runner(argv, { ...timeout, ...extra });
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        if (e.failure === 'not-installed') {
          throw e.restate(`the ${name} backend needs ${argv[0]}, which is not installed (${e.message})`);
        }
        if (e.failure !== 'lock-busy') throw e;
        if (attempt > lockRetries) {
          throw e.restate(`${argv.join(' ')}: the xtables lock stayed busy through ${attempt} attempts of -w ${wait} s each (another program holds it): ${saidByIptables(e.stderr)}`);
        }
        await sleep(delay);
        delay *= 2;
      }
    }
  }

  /** `-C` of our jump: exit 0 it is there, 1 it is not, 2 our chain is missing (tells "missing" from "incompatible"); any other exit 2 throws. */
  async function probeJump(family: Family): Promise<CommandResult & { readonly argv: string[] }> {
    const argv = nat(family, '-C', 'POSTROUTING', ...jumpRuleSpec(chain));
    const r = await run(argv, { okExitCodes: [0, 1, 2] });
    if (r.exitCode === 2 && !isTargetMissing(r)) {
      throw new CommandError(argv, r.exitCode, r.stderr, 'other', `${argv.join(' ')}: exit code ${r.exitCode}: ${saidByIptables(r.stderr)}`);
    }
    return { ...r, argv };
  }

  /**
   * The nat POSTROUTING rules as `-S` prints them (cheap on nft; legacy reads the table anyway).
   * The jump is checked from this listing: 6-19 ms next to 50,000 rules of ours on iptables-nft,
   * where `-C POSTROUTING` takes 0.6-1.2 s (only a missing chain's "incompatible" error is probed so).
   */
  async function postrouting(family: Family): Promise<string[]> {
    const argv = nat(family, '-S', 'POSTROUTING');
    const r = await run(argv);
    const lines = outputLines(r.stdout);
    // A listing always starts with the policy line. Without it (a wrapper that lost the output, NULs
    // in place of text) it says nothing about our jump: "no jump" read from it adds one every sync.
    if (!lines.some((l) => l.startsWith('-P POSTROUTING '))) {
      const shown = r.stdout === '' ? 'nothing' : `${Buffer.byteLength(r.stdout)} bytes without it: ${quoteExcerpt(r.stdout, 80)}`;
      throw new CommandError(argv, r.exitCode, r.stderr, 'other', `${argv.join(' ')}: printed no "-P POSTROUTING" policy line (${shown}), so it is no listing of the chain; nothing was changed`);
    }
    return lines;
  }

  /**
   * The chains that rules with our jump's comment lead to, when such rules are in `listing`, each
   * listed and judged. Runs nothing when there is none (every quiet sync).
   */
  async function inspectRenamed(family: Family, listing: readonly string[]): Promise<RenamedJump[]> {
    const found: RenamedJump[] = [];
    for (const rule of findRenamedJumps(listing, chain)) {
      const target = rule.target;
      let rules: string[] | undefined;
      if (target !== undefined && mayBeOurChain(target)) {
        const r = await run(nat(family, '-S', target), { okExitCodes: [0, 1] });
        if (r.exitCode === 0) rules = outputLines(r.stdout);
      }
      found.push({ line: rule.line, target: target ?? '(none)', verdict: judgeRenamedChain(target, rules) });
    }
    return found;
  }

  /**
   * Before our jump is added where a listing showed none although our chain was there: `-C` asks
   * the kernel itself, so a listing that lost lines never adds a second jump (nor one per sync).
   */
  async function refuseHiddenJump(family: Family): Promise<void> {
    const { exitCode, stderr, argv } = await probeJump(family);
    if (exitCode === 0) {
      const why = `-S POSTROUTING showed no jump to ${chain}, but ${argv.join(' ')} finds ours: the listing lost lines (a wrapper around ${tool(family)}?); not adding a second jump`;
      throw new CommandError(argv, 0, stderr, 'other', why);
    }
  }

  /**
   * Lists POSTROUTING after apply changed it and fails the sync unless it shows exactly our one
   * jump (first when wanted) and none of the renamed jumps just deleted: a repair that did not take
   * is a failed sync, never repeated blindly. The listing then serves findShadowing.
   */
  async function verifyPostrouting(family: Family, first: boolean, removed: readonly string[]): Promise<void> {
    const after = await postrouting(family);
    const jumps = findRulesWithTarget(after, 'POSTROUTING', chain);
    const left = removed.filter((l) => after.includes(l));
    if (planJumpRepair(after, chain, renderJumpSaveLine(chain), first).kind !== 'none' || left.length > 0) {
      const found = `${jumps.length} jump${jumps.length === 1 ? '' : 's'} to ${chain}${left.length > 0 ? ` and ${left.length} deleted rule${left.length === 1 ? '' : 's'} still there` : ''}`;
      throw new Error(
        `${name}: the repair of nat POSTROUTING did not take: listed after it, POSTROUTING shows ${found}, where exactly one jump, ours${first ? ' and first' : ''}, was written; ` +
          'not repeating it (does another program rewrite POSTROUTING, or does the listing lose lines?)',
      );
    }
    lastPostrouting.set(family, after);
  }

  /** The restore lines that take back every renamed chain of ours in `found`, and the jumps they delete. */
  function removalOf(found: readonly RenamedJump[] | undefined): { lines: string[]; removed: string[] } {
    const ours = (found ?? []).filter((r) => r.verdict.ours);
    return { lines: ours.flatMap((r) => renamedRemovalLines(r.line, r.target)), removed: ours.map((r) => r.line) };
  }

  async function restore(family: Family, payload: string): Promise<void> {
    await run([tool(family, '-restore'), '-w', wait, '--noflush'], { input: payload });
  }

  /** Takes back every renamed chain of ours in `found` in one restore; returns the jumps it deleted. */
  async function removeRenamed(family: Family, found: readonly RenamedJump[]): Promise<string[]> {
    const { lines, removed } = removalOf(found);
    if (lines.length > 0) await restore(family, natPayload(lines));
    return removed;
  }

  /** Restores one payload of our chain; a refusal becomes an IptablesRestoreError naming the payload line. */
  async function restorePayload(family: Family, payload: string): Promise<void> {
    try {
      await restore(family, payload);
    } catch (e) {
      if (e instanceof CommandError && (e.failure === 'other' || e.failure === 'not-found')) {
        const n = restoreFailedLine(e);
        throw new IptablesRestoreError(e, n, n === undefined ? undefined : payload.split('\n')[n - 1], payload);
      }
      throw e;
    }
  }

  /** `-F`/`-X` of our chain, where "no such chain" is success (cleanup is idempotent). */
  async function chainCommand(family: Family, flag: '-F' | '-X'): Promise<void> {
    const argv = nat(family, flag, chain);
    let r: CommandResult;
    try {
      r = await run(argv, { okExitCodes: [0, 1] });
    } catch (e) {
      // iptables-nft exits 4 here, which is no lock problem: say what holds the chain.
      if (e instanceof CommandError && e.failure === 'other' && isChainInUse(e)) {
        throw e.restate(`${argv.join(' ')}: ${saidByIptables(e.stderr)}: ${IN_USE_HINT}`);
      }
      throw e;
    }
    if (r.exitCode === 1 && !isChainMissing(r)) {
      const hint = isChainInUse(r) ? `: ${IN_USE_HINT}` : '';
      throw new CommandError(argv, 1, r.stderr, 'other', `${argv.join(' ')}: exit code 1: ${saidByIptables(r.stderr)}${hint}`);
    }
  }

  /** Our chain and jump as `-S` lines (the read-back), listing POSTROUTING for the plan too. */
  async function readOld(family: Family): Promise<OwnedState> {
    const pending = prepared.get(family);
    prepared.delete(family);
    const listArgv = nat(family, '-S', chain);
    // Two independent listings, asked at once (one process's start-up less to wait for).
    const [list, rules] = await Promise.all([run(listArgv, { okExitCodes: [0, 1] }), pending ?? postrouting(family)]);
    // Every jump to our chain, in any form: an extra one is drift that apply repairs.
    const jumps = findRulesWithTarget(rules, 'POSTROUTING', chain).map((r) => r.line);
    lastPostrouting.set(family, rules);
    let chainLines: string[];
    if (list.exitCode === 0) {
      const seen = lastChain.get(family);
      // Comparing the text is one memcmp; splitting 10,000 lines again is allocation and GC.
      if (seen?.stdout === list.stdout) chainLines = seen.lines;
      else {
        chainLines = outputLines(list.stdout);
        lastChain.set(family, { stdout: list.stdout, lines: chainLines });
      }
    } else if (isChainMissing(list) || (isChainIncompatible(list) && jumps.length === 0 && (await probeJump(family)).exitCode === 2)) {
      // iptables-nft 1.8.9 calls a missing chain "incompatible"; the -C probe confirms it is absent.
      chainLines = [];
    } else {
      throw new CommandError(listArgv, list.exitCode, list.stderr, 'other', `${listArgv.join(' ')}: exit code ${list.exitCode}: ${saidByIptables(list.stderr)}`);
    }
    // A chain written for `first` (it starts with the kube-proxy mark rule) wants our jump first:
    // a rule someone inserted above it shows as one more line, so the sync moves the jump back.
    const markRule = ` -m comment --comment ${quoteRuleArg(KUBE_MARK_COMMENT)} -j RETURN`;
    const note = chainLines.some((l) => l.endsWith(markRule)) ? notFirstLine(rules, chain, NOT_FIRST_NOTE) : undefined;
    // A rule with our jump's comment that leads elsewhere (our chain renamed) decides traffic too.
    const renamed = (await inspectRenamed(family, rules)).flatMap((r) => [r.line, renamedNote(r)]);
    const state = [...(note === undefined ? [] : [note]), ...jumps, ...renamed, ...chainLines];
    const prev = lastRead.get(family);
    if (prev && prev.length === state.length && prev.every((l, i) => l === state[i])) return prev;
    lastRead.set(family, state);
    return state;
  }

  /** Writes one family's policy: the chain's restore and the jump put right. */
  async function applyOld(policy: FamilyPolicy, seen?: OwnedState): Promise<void> {
    const family = policy.family;
    const readListing = seen === undefined ? undefined : lastPostrouting.get(family);
    lastPostrouting.delete(family);
    const pending = prepared.get(family);
    prepared.delete(family);
    const first = exemptionIsFinal(policy);
    const ourJump = renderJumpSaveLine(chain);
    // On legacy POSTROUTING is listed before the restore (the read's listing, the one
    // prepareSync started, or one that runs while the payload renders), and a repair it calls
    // for joins the chain's restore. On nft the listing costs a few ms: there the jump is
    // checked after the restore, as the reference does.
    const early = mode !== 'legacy' ? undefined : readListing !== undefined ? Promise.resolve(readListing) : (pending ?? postrouting(family));
    // The render may throw first; the listing's failure is then of no interest.
    early?.catch(() => undefined);
    const chainPayload = renderRestorePayload(policy, renderOptions(policy));
    const listedEarly =
      early === undefined
        ? undefined
        : await early.catch((e: unknown) => {
            // A busy lock would keep the restore out too; any other failure leaves the jump to the check after it.
            if (e instanceof CommandError && e.failure === 'lock-busy') throw e;
            return undefined;
          });
    const plan = listedEarly === undefined ? undefined : planJumpRepair(listedEarly, chain, ourJump, first);
    // The read just before saw no jump of any form (a fresh node, or the jump deleted): it joins
    // the chain's restore, which makes both at once, instead of a listing and an -A after it.
    const addJump = seen !== undefined && findRulesWithTarget(seen, 'POSTROUTING', chain).length === 0;
    // No jump can lead to a chain that is not there; with the chain there, the kernel is asked.
    if (addJump && seen?.includes(`-N ${chain}`)) await refuseHiddenJump(family);
    const jumpLine = first ? `-I POSTROUTING 1 ${ourJump.slice('-A POSTROUTING '.length)}` : ourJump;
    // A missing jump joins the restore only after a read (render() says apply adds it after the
    // payload); a jump to replace always does: on legacy a restore of its own rewrites the table again.
    const foldPlan = plan !== undefined && (plan.kind === 'replace' || (seen !== undefined && plan.kind !== 'none'));
    // Our chain renamed (`iptables -E`) goes in the same transaction: its jump deleted, then it.
    // After the jump lines, whose positions were counted with the renamed jump in place.
    const listedBefore = listedEarly ?? readListing;
    let renamed = listedBefore === undefined ? undefined : await inspectRenamed(family, listedBefore);
    const renamedLines = removalOf(renamed);
    const extra = [...(addJump ? [jumpLine] : foldPlan ? jumpRepairLines(plan, ourJump) : []), ...renamedLines.lines];
    const payload = extra.length === 0 ? chainPayload : chainPayload.replace(/COMMIT\n$/, `${extra.join('\n')}\nCOMMIT\n`);
    let listed = listedEarly;
    let folded = extra.length > 0;
    try {
      await restorePayload(family, payload);
    } catch (e) {
      // A jump deleted by someone since the listing fails the whole transaction (-D of a rule
      // not there), as does a renamed chain that something else still jumps to: the chain goes
      // alone, and the rest is listed and repaired after it.
      if ((plan?.kind !== 'replace' && renamedLines.lines.length === 0) || !(e instanceof IptablesRestoreError)) throw e;
      await restorePayload(family, chainPayload);
      listed = undefined;
      renamed = undefined;
      folded = false;
    }
    const removed = folded ? renamedLines.removed : [];
    let changed = folded;
    if (!(folded && (addJump || foldPlan))) {
      // Only now, with the chain complete, may traffic be sent into it (legacy listed before the restore).
      listed ??= await postrouting(family);
      const repair = planJumpRepair(listed, chain, ourJump, first);
      if (repair.kind === 'append' || repair.kind === 'insert-first') await refuseHiddenJump(family);
      if (repair.kind === 'append') await run(nat(family, '-A', 'POSTROUTING', ...jumpRuleSpec(chain)));
      if (repair.kind === 'insert-first') await run(nat(family, '-I', 'POSTROUTING', '1', ...jumpRuleSpec(chain)));
      if (repair.kind === 'replace') {
        try {
          await restore(family, repair.payload);
        } catch (e) {
          if (!(e instanceof CommandError)) throw e;
          const what = `replacing ${repair.remove.length} POSTROUTING jump${repair.remove.length === 1 ? '' : 's'} to ${chain} (older forms, duplicates, or ours not first) by ours`;
          throw e.restate(`${what} failed; the chain is up to date: ${e.message}`);
        }
      }
      changed ||= repair.kind !== 'none';
    }
    if (renamed === undefined) {
      // No listing before the restore (nft after a config change), or the joint restore failed.
      renamed = await inspectRenamed(family, listed ?? (await postrouting(family)));
      const late = renamed.filter((r) => r.verdict.ours).length;
      try {
        removed.push(...(await removeRenamed(family, renamed)));
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        throw e.restate(`deleting our renamed chain (${late} jump${late === 1 ? '' : 's'} to it) failed; the chain ${chain} is up to date: ${e.message}`);
      }
      changed ||= late > 0;
    }
    if (changed) await verifyPostrouting(family, first, removed);
    // Nothing changed: POSTROUTING is as listed, and findShadowing need not list it again.
    else if (listed !== undefined) lastPostrouting.set(family, listed);
    const foreign = renamed.find((r) => !r.verdict.ours);
    if (foreign !== undefined) throw foreignRenamedError(foreign, chain);
  }

  const backend: Backend<IptablesObserved, IptablesPlan> = {
    name,

    expected(policy: FamilyPolicy): OwnedState {
      return renderSaveLines(policy, renderOptions(policy));
    },

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

    // iptables itself judges every rule at apply; nothing is known to fail before.

    describe(): BackendFacts {
      return {
        name,
        dialect: 'iptables',
        mode,
        randomFullySupported: opts.randomFullySupported,
        ...(opts.detected === undefined ? {} : { modeReason: opts.detected.reason, version: opts.detected.version }),
      };
    },

    leftovers() {
      return (['ipv4', 'ipv6'] as const).map((family) => iptablesLeftover(runner, mode, family, chain, () => backend.cleanup(family)));
    },

    async read(family: Family): Promise<IptablesObserved> {
      const owned = await readOld(family);
      const listing = lastPostrouting.get(family);
      return { family, owned, shadowing: findShadowingRules(listing ?? [], chain) };
    },

    plan(observed: IptablesObserved, policy: FamilyPolicy): IptablesPlan {
      const upToDate = sameState(observed.owned, backend.expected(policy));
      return { family: policy.family, upToDate, shadowing: observed.shadowing, policy, seen: observed.owned };
    },

    async apply(plan: IptablesPlan): Promise<void> {
      if (plan.upToDate) return;
      await applyOld(plan.policy, plan.seen);
    },

    async cleanup(family: Family): Promise<void> {
      lastPostrouting.delete(family);
      prepared.delete(family);
      // Every form at once (ours, older releases', duplicates, bare); again if more came meanwhile.
      let listing: string[];
      for (let round = 0; ; round++) {
        listing = await postrouting(family);
        const jumps = findRulesWithTarget(listing, 'POSTROUTING', chain).map((r) => r.line);
        if (jumps.length === 0) break;
        if (round >= MAX_JUMP_ROUNDS) {
          throw new CommandError([], null, '', 'other', `${name}: POSTROUTING jumps to ${chain} still present after ${MAX_JUMP_ROUNDS} rounds of deletes (does another agent keep adding them?)`);
        }
        await restore(family, renderDeletePayload(jumps));
      }
      await chainCommand(family, '-F');
      await chainCommand(family, '-X');
      // Our chain renamed still masquerades: it goes too. A chain that is not clearly ours stays.
      await removeRenamed(family, await inspectRenamed(family, listing));
    },
  };
  return backend;
}
