// The iptables commands the backend runs, each once: the lock retried, a missing binary named,
// a refused payload located, a listing without its policy line refused.
import { CommandError, restated } from '../../errors.js';
import { cutExcerpt, quoteExcerpt } from '../../excerpt.js';
import { isChainInUse, isChainMissing, isTargetMissing, restoreFailedLine, saidByIptables, type CommandResult, type Runner } from '../../exec/runner.js';
import type { Family } from '../../net/cidr.js';
import { DEFAULT_WAIT_SECONDS } from './constants.js';
import type { IptablesMode } from './detect.js';
import { jumpRuleSpec } from './render.js';

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
  /** Injected so unit tests drive retries without waiting. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** What detection found (why this mode, which version), for describe(). */
  readonly detected?: { readonly reason: string; readonly version: string };
}

/** A command's result with the argv that produced it. */
type Ran = CommandResult & { readonly argv: string[] };

const IN_USE_HINT = 'a rule outside POSTROUTING still jumps to the chain; delete that rule, then run cleanup again';
const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The lines of a `-S` listing, without blanks and `#` comments. */
export function outputLines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

/** The iptables commands of one mode and chain; every call passes `-w`. */
export function createIptablesCommands(opts: IptablesBackendOptions) {
  const { runner, mode, chain } = opts;
  const name = `iptables-${mode}`;
  const wait = String(opts.waitSeconds ?? DEFAULT_WAIT_SECONDS);
  const lockRetries = opts.lockRetries ?? 2;
  const sleep = opts.sleep ?? defaultSleep;
  const tool = (family: Family, suffix: '' | '-restore' = ''): string => `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}${suffix}`;
  const nat = (family: Family, ...args: string[]): string[] => [tool(family), '-w', wait, '-t', 'nat', ...args];

  /** Runs one command, retrying while the xtables lock is busy; the result names its argv. */
  async function run(argv: string[], extra: { input?: string; okExitCodes?: number[] } = {}): Promise<Ran> {
    let delay = opts.retryDelayMs ?? 250;
    for (let attempt = 1; ; attempt++) {
      try {
        return { ...(await runner(argv, extra)), argv };
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

  /** A failed command as a CommandError that quotes what iptables said, and `hint` after it. */
  const failed = (r: Ran, hint = ''): CommandError => new CommandError(r.argv, r.exitCode, r.stderr, 'other', `${r.argv.join(' ')}: exit code ${r.exitCode}: ${saidByIptables(r.stderr)}${hint}`);

  return {
    name,
    tool,
    failed,

    /** `-S CHAIN` of one nat chain; exit 1 (no such chain, or nft's "incompatible") is returned, not thrown. */
    list: (family: Family, target: string): Promise<Ran> => run(nat(family, '-S', target), { okExitCodes: [0, 1] }),

    /**
     * The nat POSTROUTING rules as `-S` prints them (cheap on nft; legacy reads the table anyway).
     * The jump is checked from this listing: 6-19 ms next to 50,000 rules of ours on iptables-nft,
     * where `-C POSTROUTING` takes 0.6-1.2 s (only a missing chain's "incompatible" error is probed so).
     */
    async postrouting(family: Family): Promise<string[]> {
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
    },

    /** `-S CHAIN -v` of our chain: its rules with their counters (counters.ts reads them). */
    counters: async (family: Family): Promise<string> => (await run(nat(family, '-S', chain, '-v'))).stdout,

    /** `-C` of our jump: exit 0 it is there, 1 it is not, 2 our chain is missing (tells "missing" from "incompatible"); any other exit 2 throws. */
    async probeJump(family: Family): Promise<Ran> {
      const r = await run(nat(family, '-C', 'POSTROUTING', ...jumpRuleSpec(chain)), { okExitCodes: [0, 1, 2] });
      if (r.exitCode === 2 && !isTargetMissing(r)) throw failed(r);
      return r;
    },

    /** `iptables-restore --noflush` of one payload; a refusal becomes an IptablesRestoreError naming the payload line. */
    async restore(family: Family, payload: string): Promise<void> {
      try {
        await run([tool(family, '-restore'), '-w', wait, '--noflush'], { input: payload });
      } catch (e) {
        if (e instanceof CommandError && (e.failure === 'other' || e.failure === 'not-found')) {
          const n = restoreFailedLine(e);
          throw new IptablesRestoreError(e, n, n === undefined ? undefined : payload.split('\n')[n - 1], payload);
        }
        throw e;
      }
    },

    /** `-F`/`-X` of our chain, where "no such chain" is success (cleanup is idempotent). */
    async chainCommand(family: Family, flag: '-F' | '-X'): Promise<void> {
      const argv = nat(family, flag, chain);
      const r = await run(argv, { okExitCodes: [0, 1] }).catch((e: unknown) => {
        // iptables-nft exits 4 here, which is no lock problem: say what holds the chain.
        if (e instanceof CommandError && e.failure === 'other' && isChainInUse(e)) {
          throw e.restate(`${argv.join(' ')}: ${saidByIptables(e.stderr)}: ${IN_USE_HINT}`);
        }
        throw e;
      });
      if (r.exitCode === 1 && !isChainMissing(r)) throw failed(r, isChainInUse(r) ? `: ${IN_USE_HINT}` : '');
    },
  };
}

/** The commands createIptablesCommands returns. */
export type IptablesCommands = ReturnType<typeof createIptablesCommands>;
