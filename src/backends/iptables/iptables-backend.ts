// The iptables backend (nft or legacy flavour): one `iptables-restore --noflush` payload per
// family and sync, then the POSTROUTING jump added only if `-C` says it is missing. Reads back
// only our chain and the jump: a full `iptables-save -t nat` costs over a second next to a big
// kube-proxy (netfilter-facts.md).
import type { Backend, OwnedState } from '../backend.js';
import { CommandError } from '../../errors.js';
import { excerpt } from '../../excerpt.js';
import type { CommandResult, Runner } from '../../exec/runner.js';
import type { Family } from '../../net/cidr.js';
import type { FamilyPolicy } from '../../policy-types.js';
import { DEFAULT_WAIT_SECONDS } from './constants.js';
import { findShadowingRules } from './shadow.js';
import type { IptablesMode } from './detect.js';
import {
  checkChainName,
  jumpRuleSpec,
  renderJumpSaveLine,
  renderRestorePayload,
  renderSaveLines,
  type RenderOptions,
} from './render.js';

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
    const where = line === undefined ? '' : ` at payload line ${line}${lineText === undefined ? '' : ` (${excerpt(lineText)})`}`;
    const why = said(base.stderr) || base.message;
    super(base.argv, base.exitCode, base.stderr, base.failure, `${base.argv.join(' ')} refused the payload${where}: ${why}`);
  }
}

// `-S CHAIN` of a missing chain exits 1 with one of these (the second is iptables-nft 1.8.9's wording).
const NO_CHAIN = /No chain\/target\/match by that name/;
const NFT_INCOMPATIBLE = /in table `nat' is incompatible/;
// `-C ... -j CHAIN` exits 2 when the jump target does not exist (nft / legacy wording).
const TARGET_MISSING = /Chain '[^']*' does not exist|Couldn't load target/;
// Stops a cleanup loop if `-D` somehow never removes what `-C` finds.
const MAX_JUMP_DELETES = 100;

type JumpState = 'present' | 'missing' | 'no-chain';

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function outputLines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

/** What iptables said, on one line and cut short: its messages without the "Try `iptables -h'" boilerplate. */
function said(stderr: string): string {
  const lines: string[] = [];
  for (const raw of stderr.split('\n')) {
    const l = raw.trim();
    if (l !== '' && !l.startsWith('Try `') && !l.startsWith('Error occurred at line')) lines.push(l);
    if (lines.length === 3) break;
  }
  return excerpt(lines.join(' | '));
}

/** Creates the iptables backend for one mode; its name is `iptables-nft` or `iptables-legacy`. */
export function createIptablesBackend(opts: IptablesBackendOptions): Backend {
  const problem = checkChainName(opts.chain);
  if (problem) throw new Error(`invalid iptables chain name: ${problem}`);
  const { runner, mode, chain } = opts;
  const wait = String(opts.waitSeconds ?? DEFAULT_WAIT_SECONDS);
  const lockRetries = opts.lockRetries ?? 2;
  const retryDelayMs = opts.retryDelayMs ?? 250;
  const timeout = opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs };
  const sleep = opts.sleep ?? defaultSleep;
  const name = `iptables-${mode}`;

  const tool = (family: Family, suffix: '' | '-save' | '-restore' = ''): string =>
    `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}${suffix}`;
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
          throw new CommandError(e.argv, e.exitCode, e.stderr, 'not-installed', `the ${name} backend needs ${argv[0]}, which is not installed (${e.message})`);
        }
        if (e.failure !== 'lock-busy') throw e;
        if (attempt > lockRetries) {
          throw new CommandError(
            e.argv,
            e.exitCode,
            e.stderr,
            'lock-busy',
            `${argv.join(' ')}: the xtables lock stayed busy through ${attempt} attempts of -w ${wait} s each (another program holds it): ${said(e.stderr)}`,
          );
        }
        await sleep(delay);
        delay *= 2;
      }
    }
  }

  async function jumpState(family: Family): Promise<JumpState> {
    const argv = nat(family, '-C', 'POSTROUTING', ...jumpRuleSpec(chain));
    const r = await run(argv, { okExitCodes: [0, 1, 2] });
    if (r.exitCode === 0) return 'present';
    if (r.exitCode === 1) return 'missing';
    if (TARGET_MISSING.test(r.stderr)) return 'no-chain';
    throw new CommandError(argv, r.exitCode, r.stderr, 'other', `${argv.join(' ')}: exit code ${r.exitCode}: ${said(r.stderr)}`);
  }

  /** `-F`/`-X` of our chain, where "no such chain" is success (cleanup is idempotent). */
  async function chainCommand(family: Family, flag: '-F' | '-X'): Promise<void> {
    const argv = nat(family, flag, chain);
    const r = await run(argv, { okExitCodes: [0, 1] });
    if (r.exitCode === 1 && !NO_CHAIN.test(r.stderr)) {
      throw new CommandError(argv, 1, r.stderr, 'other', `${argv.join(' ')}: exit code 1: ${said(r.stderr)}`);
    }
  }

  return {
    name,

    expected(policy: FamilyPolicy): OwnedState {
      return renderSaveLines(policy, renderOptions(policy));
    },

    async read(family: Family): Promise<OwnedState> {
      const listArgv = nat(family, '-S', chain);
      const list = await run(listArgv, { okExitCodes: [0, 1] });
      const jump = await jumpState(family);
      let chainLines: string[];
      if (list.exitCode === 0) {
        chainLines = outputLines(list.stdout);
      } else if (NO_CHAIN.test(list.stderr) || (NFT_INCOMPATIBLE.test(list.stderr) && jump === 'no-chain')) {
        // iptables-nft 1.8.9 calls a missing chain "incompatible"; the -C probe confirms it is absent.
        chainLines = [];
      } else {
        throw new CommandError(listArgv, list.exitCode, list.stderr, 'other', `${listArgv.join(' ')}: exit code ${list.exitCode}: ${said(list.stderr)}`);
      }
      return jump === 'present' ? [renderJumpSaveLine(chain), ...chainLines] : chainLines;
    },

    async apply(policy: FamilyPolicy): Promise<void> {
      const payload = renderRestorePayload(policy, renderOptions(policy));
      const argv = [tool(policy.family, '-restore'), '-w', wait, '--noflush'];
      try {
        await run(argv, { input: payload });
      } catch (e) {
        if (e instanceof CommandError && (e.failure === 'other' || e.failure === 'not-found')) {
          const m = /Error occurred at line: (\d+)|line (\d+) failed/.exec(e.stderr);
          const n = m ? Number(m[1] ?? m[2]) : undefined;
          throw new IptablesRestoreError(e, n, n === undefined ? undefined : payload.split('\n')[n - 1], payload);
        }
        throw e;
      }
      // Only now, with the chain complete, may traffic be sent into it.
      if ((await jumpState(policy.family)) !== 'present') {
        await run(nat(policy.family, '-A', 'POSTROUTING', ...jumpRuleSpec(chain)));
      }
    },

    async findShadowing(family: Family): Promise<readonly string[]> {
      const r = await run(nat(family, '-S', 'POSTROUTING'));
      return findShadowingRules(outputLines(r.stdout), chain);
    },

    async cleanup(family: Family): Promise<void> {
      // Repeat: another agent (or an old run) may have left duplicates of the same jump.
      let deletes = 0;
      while ((await jumpState(family)) === 'present') {
        if (deletes++ >= MAX_JUMP_DELETES) {
          throw new CommandError([], null, '', 'other', `${name}: POSTROUTING jump to ${chain} still present after ${MAX_JUMP_DELETES} deletes`);
        }
        await run(nat(family, '-D', 'POSTROUTING', ...jumpRuleSpec(chain)));
      }
      await chainCommand(family, '-F');
      await chainCommand(family, '-X');
    },
  };
}
