// Shared by the iptables unit and integration tests: policy builders, the golden-case format,
// and a scripted fake Runner that behaves like the real one (ok exit codes, classified errors).
import { CommandError } from '../../src/errors.js';
import { classifyFailure, type CommandResult, type RunOptions, type Runner } from '../../src/exec/runner.js';
import { formatCidr, formatIp, parseCidr, parseIp, type Family } from '../../src/net/cidr.js';
import type { ActionRange, ExemptRange, FamilyPolicy, PortRange, PostroutingPosition } from '../../src/policy/types.js';
import { parseRuleLine, quoteRuleArg } from '../../src/backends/iptables/rules.js';

/** An exempt range from CIDR text. */
export function exempt(text: string, reason: ExemptRange['reason'] = 'config'): ExemptRange {
  const cidr = parseCidr(text);
  return { cidr, text: formatCidr(cidr), reason, source: 'test', path: '' };
}

/** A `--to-ports` range from `1024-29999` or `8080`. */
export function portRange(text: string): PortRange {
  const [a, b] = text.split('-');
  const from = Number(a);
  return { from, to: b === undefined ? from : Number(b), text };
}

/** A golden case's input, as stored in `policy.json`. */
export interface GoldenInput {
  readonly family: Family;
  readonly chain: string;
  readonly randomFully: boolean;
  readonly randomFullySupported: boolean;
  /** CIDR texts; a `link-local:` prefix marks the built-in link-local range. */
  readonly exempt: readonly string[];
  readonly toPorts: readonly string[];
  /** `--postrouting-position`; absent means `append`. */
  readonly postroutingPosition?: PostroutingPosition;
  /** `--iptables-masquerade-bit`; absent means 14. */
  readonly masqueradeBit?: number;
  /** masqueradeCIDRs entries. */
  readonly masquerade?: readonly string[];
  /** snat entries as `CIDR>ADDRESS`. */
  readonly snat?: readonly string[];
  /** masqueradeSourceCIDRs. */
  readonly sources?: readonly string[];
}

/** The FamilyPolicy a golden input describes. */
export function policyOf(input: GoldenInput): FamilyPolicy {
  const actions: ActionRange[] = [
    ...(input.masquerade ?? []).map((t): ActionRange => ({ ...exempt(t), action: { kind: 'masquerade' }, list: 'masqueradeCIDRs' })),
    ...(input.snat ?? []).map((t): ActionRange => {
      const [cidr, addr] = t.split('>') as [string, string];
      const ip = parseIp(addr);
      return { ...exempt(cidr), action: { kind: 'snat', toSource: ip, toSourceText: formatIp(ip) }, list: 'snat' };
    }),
  ];
  const sources = (input.sources ?? []).map((t) => exempt(t));
  return {
    family: input.family,
    exempt: input.exempt.map((t) => (t.startsWith('link-local:') ? exempt(t.slice('link-local:'.length), 'link-local') : exempt(t))),
    randomFully: input.randomFully,
    toPorts: input.toPorts.map(portRange),
    ...(input.postroutingPosition === undefined ? {} : { postroutingPosition: input.postroutingPosition }),
    ...(input.masqueradeBit === undefined ? {} : { masqueradeBit: input.masqueradeBit }),
    ...(actions.length > 0 ? { actions } : {}),
    ...(sources.length > 0 ? { sources } : {}),
  };
}

/** One command the fake saw. */
export interface Call {
  readonly argv: readonly string[];
  readonly options: RunOptions;
}

/** What a scripted handler answers: a result, or a CommandError to throw as is. */
export type Reply = { stdout?: string; stderr?: string; exitCode?: number } | CommandError;

/**
 * A fake Runner driven by a handler; it records every call and, like the real runner, turns an
 * exit code outside okExitCodes into a classified CommandError.
 */
export function scriptedRunner(handler: (argv: readonly string[], options: RunOptions) => Reply): { runner: Runner; calls: Call[] } {
  const calls: Call[] = [];
  const runner: Runner = async (argv, options = {}) => {
    calls.push({ argv: [...argv], options });
    const reply = handler(argv, options);
    if (reply instanceof CommandError) throw reply;
    const result: CommandResult = { stdout: reply.stdout ?? '', stderr: reply.stderr ?? '', exitCode: reply.exitCode ?? 0 };
    if (!(options.okExitCodes ?? [0]).includes(result.exitCode)) {
      throw new CommandError(argv, result.exitCode, result.stderr, classifyFailure(result.exitCode, result.stderr), `${argv.join(' ')}: exit code ${result.exitCode}`);
    }
    return result;
  };
  return { runner, calls };
}

/** State of one family in the fake iptables. */
export interface FakeTable {
  /** Our chain's `-S` lines; undefined when the chain does not exist. */
  chainLines: string[] | undefined;
  /** The nat POSTROUTING rules, as `-S POSTROUTING` prints them (without the `-P` line). */
  postrouting: string[];
  /** Other nat chains by name, as `-S NAME` prints them (`-N NAME` first); set only by tests that need them. */
  others?: Record<string, string[]>;
}

/** The POSTROUTING rules of a fake table that jump to `chain`. */
export function jumpsIn(t: FakeTable | undefined, chain = 'IP-MASQ-AGENT'): string[] {
  return (t?.postrouting ?? []).filter((l) => parseRuleLine(l)?.target === chain);
}

/** argv after `-C|-A|-D POSTROUTING` as `-S` prints it (the fake's rule identity). */
export function saveLineOf(args: readonly string[]): string {
  return ['-A', 'POSTROUTING', ...args.map((a) => (/^[^\s"'\\]+$/.test(a) ? a : quoteRuleArg(a)))].join(' ');
}

/** Wording of iptables 1.8.9 that the backend relies on, per mode. */
export const IPTABLES_SAYS = {
  noChain: 'iptables: No chain/target/match by that name.\n',
  nftIncompatible: "iptables v1.8.9 (nf_tables): chain `IP-MASQ-AGENT' in table `nat' is incompatible, use 'nft' tool.\n",
  badRule: 'iptables: Bad rule (does a matching rule exist in that chain?).\n',
  nftTargetMissing: "iptables v1.8.9 (nf_tables): Chain 'IP-MASQ-AGENT' does not exist\n",
  legacyTargetMissing: "iptables v1.8.9 (legacy): Couldn't load target `IP-MASQ-AGENT':No such file or directory\n",
  nftChainBusy: 'iptables v1.8.9 (nf_tables):  CHAIN_DEL failed (Device or resource busy): chain IP-MASQ-AGENT\n',
  legacyChainBusy: 'iptables: Too many links.\n',
  lockBusy: "Can't lock /run/xtables.lock: Resource temporarily unavailable\nAnother app is currently holding the xtables lock. Stopped waiting after 5s.\n",
} as const;

/**
 * A minimal stateful iptables for argv-level tests: a restore creates the chain and runs its
 * `-D/-I/-A POSTROUTING` lines all or nothing, `-S/-C/-A/-I/-D POSTROUTING` act on the rule lines,
 * `-F/-X` empty and remove the chain (`-X` refuses while a rule jumps to it), with iptables' exit
 * codes and messages. `mode` picks the wording.
 */
export function fakeIptables(mode: 'nft' | 'legacy' = 'nft', chain = 'IP-MASQ-AGENT'): { tables: Record<string, FakeTable>; handle: (argv: readonly string[], options?: RunOptions) => Reply } {
  const tables: Record<string, FakeTable> = {};
  const table = (bin: string): FakeTable => {
    const key = bin.startsWith('ip6') ? 'ipv6' : 'ipv4';
    tables[key] ??= { chainLines: undefined, postrouting: [] };
    return tables[key];
  };
  const targetMissing = { exitCode: 2, stderr: mode === 'nft' ? IPTABLES_SAYS.nftTargetMissing : IPTABLES_SAYS.legacyTargetMissing };
  const restore = (t: FakeTable, input: string): Reply => {
    let chainLines = t.chainLines;
    const rules = [...t.postrouting];
    const others = { ...t.others };
    const lines = input.split('\n');
    for (const [i, line] of lines.entries()) {
      const failed = { exitCode: 1, stderr: `${mode === 'nft' ? 'iptables-nft-restore' : 'iptables-restore'}: line ${i + 1} failed\n` };
      if (line.startsWith(`:${chain} `)) chainLines = [`-N ${chain}`];
      const other = /^-([FX]) (\S+)$/.exec(line);
      if (other) {
        const name = other[2] ?? '';
        if (others[name] === undefined) return failed;
        if (other[1] === 'F') others[name] = [`-N ${name}`];
        else if (rules.some((r) => parseRuleLine(r)?.target === name)) return failed;
        else Reflect.deleteProperty(others, name);
        continue;
      }
      const m = /^-([DIA]) POSTROUTING (?:(\d+) )?(.*)$/.exec(line);
      if (!m) continue;
      const spec = `-A POSTROUTING ${m[3]}`;
      if (parseRuleLine(spec)?.target === chain && !chainLines) return failed;
      if (m[1] === 'D') {
        const at = rules.indexOf(spec);
        if (at < 0) return failed;
        rules.splice(at, 1);
      } else if (m[1] === 'I') {
        const at = Number(m[2] ?? '1') - 1;
        if (at > rules.length) return failed;
        rules.splice(at, 0, spec);
      } else {
        rules.push(spec);
      }
    }
    t.chainLines = chainLines;
    t.postrouting = rules;
    if (t.others !== undefined) t.others = others;
    return {};
  };
  const handle = (argv: readonly string[], options: RunOptions = {}): Reply => {
    const bin = argv[0] ?? '';
    const t = table(bin);
    if (bin.endsWith('-restore')) return restore(t, options.input ?? '');
    const op = argv[5];
    const name = argv[6];
    const rule = saveLineOf(argv.slice(7));
    switch (op) {
      case '-S':
        if (name === 'POSTROUTING') return { stdout: ['-P POSTROUTING ACCEPT', ...t.postrouting].map((l) => `${l}\n`).join('') };
        if (name !== chain) {
          const lines = t.others?.[name ?? ''];
          return lines === undefined ? { exitCode: 1, stderr: IPTABLES_SAYS.noChain } : { stdout: `${lines.join('\n')}\n` };
        }
        if (t.chainLines) return { stdout: `${t.chainLines.join('\n')}\n` };
        return { exitCode: 1, stderr: mode === 'nft' ? IPTABLES_SAYS.nftIncompatible : IPTABLES_SAYS.noChain };
      case '-C':
        if (!t.chainLines) return targetMissing;
        return t.postrouting.includes(rule) ? {} : { exitCode: 1, stderr: IPTABLES_SAYS.badRule };
      case '-A':
        if (!t.chainLines) return targetMissing;
        t.postrouting.push(rule);
        return {};
      case '-I': {
        if (!t.chainLines) return targetMissing;
        const at = Number(name === 'POSTROUTING' ? argv[7] : Number.NaN) - 1;
        if (!(at >= 0 && at <= t.postrouting.length)) return { exitCode: 1, stderr: 'iptables: Index of insertion too big.\n' };
        t.postrouting.splice(at, 0, saveLineOf(argv.slice(8)));
        return {};
      }
      case '-D': {
        const at = t.postrouting.indexOf(rule);
        if (at < 0) return { exitCode: 1, stderr: IPTABLES_SAYS.badRule };
        t.postrouting.splice(at, 1);
        return {};
      }
      case '-F':
        if (!t.chainLines) return { exitCode: 1, stderr: IPTABLES_SAYS.noChain };
        t.chainLines = [`-N ${chain}`];
        return {};
      case '-X':
        if (!t.chainLines) return { exitCode: 1, stderr: IPTABLES_SAYS.noChain };
        if (jumpsIn(t, chain).length > 0) return mode === 'nft' ? { exitCode: 4, stderr: IPTABLES_SAYS.nftChainBusy } : { exitCode: 1, stderr: IPTABLES_SAYS.legacyChainBusy };
        t.chainLines = undefined;
        return {};
      default:
        throw new Error(`fake iptables: unexpected argv ${argv.join(' ')}`);
    }
  };
  return { tables, handle };
}

/**
 * A Runner whose answers wait until the test releases them: it shows which commands are asked
 * before any answer arrives (run side by side) and lets answers come in any order. Answers come
 * from `answer` (e.g. scriptedRunner's runner) once released.
 */
export function gatedRunner(answer: Runner): { runner: Runner; asked: string[]; release(order?: 'fifo' | 'lifo'): number } {
  const asked: string[] = [];
  const waiting: (() => void)[] = [];
  const runner: Runner = (argv, options) => {
    asked.push(argv.join(' '));
    return new Promise((resolve, reject) => waiting.push(() => void answer(argv, options).then(resolve, reject)));
  };
  const release = (order: 'fifo' | 'lifo' = 'fifo'): number => {
    const now = waiting.splice(0);
    for (const go of order === 'fifo' ? now : now.reverse()) go();
    return now.length;
  };
  return { runner, asked, release };
}

/** Lets every pending promise callback run (no timer, no waiting on the world). */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Releases the gated runner's answers, `order` at a time, until `work` settles; returns its result. */
export async function pump<T>(work: Promise<T>, gate: { release(order?: 'fifo' | 'lifo'): number }, order: 'fifo' | 'lifo' = 'fifo'): Promise<T> {
  let done = false;
  const finished = work.finally(() => {
    done = true;
  });
  finished.catch(() => undefined);
  while (!done) {
    await settle();
    gate.release(order);
  }
  return finished;
}
