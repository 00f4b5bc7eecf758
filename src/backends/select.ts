import type { CommandResult, Runner } from '../exec/runner.js';
import type { Logger } from '../observe/log.js';
import { CommandError } from '../errors.js';
import { memoByObject, type Backend, type CleanupTarget, type Inspection } from './backend.js';
import { createIptablesBackend } from './iptables/iptables-backend.js';
import { detectIptablesMode, iptablesVersion, supportsRandomFully, type IptablesMode } from './iptables/detect.js';
import { createNftablesBackend } from './nftables/nftables-backend.js';

/** Which netfilter backend to use (--backend). */
export type BackendChoice = 'iptables' | 'nftables' | 'auto';
/** Which iptables variant to drive (--iptables-mode): one of the two, or detected. */
export type IptablesModeChoice = 'auto' | IptablesMode;

/** What backend selection needs. */
export interface SelectOptions {
  readonly backend: BackendChoice;
  readonly iptablesMode: IptablesModeChoice;
  readonly chain: string;
  readonly runner: Runner;
  readonly log: Logger;
  /** With IPv6 off, the nftables backend removes IPv6 objects an earlier run may have left. */
  readonly enableIPv6?: boolean;
}

// Installed: it ran, or failed for another reason than a missing binary.
async function installed(runner: Runner, argv: readonly string[]): Promise<boolean> {
  return runner(argv, { timeoutMs: 10_000 }).then(
    () => true,
    (e: unknown) => !(e instanceof CommandError && e.failure === 'not-installed'),
  );
}

/** Picks the nftables or iptables backend as --backend says, and says why. */
export async function chooseBackendKind(o: SelectOptions): Promise<{ kind: 'iptables' | 'nftables'; reason: string }> {
  if (o.backend !== 'auto') return { kind: o.backend, reason: `--backend=${o.backend}` };
  // kube-proxy in nftables mode owns `ip kube-proxy` / `ip6 kube-proxy`.
  const tables = await o.runner(['nft', 'list', 'tables'], { timeoutMs: 10_000 }).then(
    (r) => r.stdout,
    () => '',
  );
  if (/^table ip6? kube-proxy$/m.test(tables)) return { kind: 'nftables', reason: 'kube-proxy runs in nftables mode (table ip kube-proxy exists)' };
  const hasIptables = (await installed(o.runner, ['iptables-nft', '--version'])) || (await installed(o.runner, ['iptables-legacy', '--version']));
  if (!hasIptables) return { kind: 'nftables', reason: 'no iptables binary is installed' };
  return { kind: 'iptables', reason: 'iptables is installed and kube-proxy does not run in nftables mode' };
}

/** Builds the iptables backend for the host's variant; `looks` runs detection's commands, the backend o.runner. */
async function createIptablesBackendFor(o: SelectOptions, looks: Runner): Promise<Backend> {
  const detected = o.iptablesMode === 'auto' ? await detectIptablesMode(looks) : { mode: o.iptablesMode, reason: `--iptables-mode=${o.iptablesMode}` };
  const version = await iptablesVersion(looks, detected.mode);
  const randomFullySupported = supportsRandomFully(version);
  o.log.info('iptables backend detected', { mode: detected.mode, reason: detected.reason, version, randomFullySupported });
  return createIptablesBackend({ runner: o.runner, mode: detected.mode, chain: o.chain, randomFullySupported, detected: { reason: detected.reason, version } });
}

/** Every place the agent may leave state: the leftovers of each form its backend can take here (iptables nft, legacy, nftables). */
export function defaultCleanupTargets(chain: string, runner: Runner): CleanupTarget[] {
  const iptables = (['nft', 'legacy'] as const).map((mode) => createIptablesBackend({ runner, mode, chain, randomFullySupported: true }));
  return [...iptables, createNftablesBackend(runner)].flatMap((b) => b.leftovers());
}

/** A runner for backends used only for their pure methods: running anything is a bug. */
const noRunner: Runner = async (argv) => {
  throw new Error(`a backend opened for rendering only must not run anything, but ran: ${argv.join(' ')}`);
};

/**
 * The backend of a kind for the commands that touch nothing (render, explain, validate): its pure
 * methods only (render, expected, describe). iptables is taken to know --random-fully
 * (>= 1.6.2, every current distribution); its variant does not change what it renders.
 */
export function createRenderOnlyBackend(kind: 'iptables' | 'nftables', chain: string): Backend {
  return kind === 'nftables' ? createNftablesBackend(noRunner) : createIptablesBackend({ runner: noRunner, mode: 'nft', chain, randomFullySupported: true });
}

/** Builds the backend the agent would use, read-only: unlike selectBackend, nothing is removed. */
export async function openBackendReadOnly(o: SelectOptions) {
  const looks = shareLooks(o.runner);
  const { kind, reason } = await chooseBackendKind({ ...o, runner: looks });
  const backend = kind === 'nftables' ? createNftablesBackend(o.runner) : await createIptablesBackendFor(o, looks);
  const facts = backend.describe();
  const parts = [reason];
  if (facts.modeReason !== undefined) parts.push(`mode: ${facts.modeReason}`);
  if (facts.version !== undefined) parts.push(`iptables ${facts.version}${facts.randomFullySupported === false ? ', without --random-fully' : ''}`);
  return { backend, description: `${backend.name} (${parts.join('; ')})` };
}

/** A backend opened for reading, and how it was chosen, in words: `iptables-nft (--backend=iptables; mode: ...; iptables 1.8.9)`. */
export type OpenedBackend = Awaited<ReturnType<typeof openBackendReadOnly>>;

/**
 * A runner that runs each command that only looks (a `*-save` dump, `nft list tables`, `--version`)
 * once and hands every caller the same answer: detection, the kube-proxy probe and the leftover
 * checks ask some of the same questions within milliseconds. Everything else (removals, listings
 * that a cleanup repeats) runs each time. For selection only.
 */
export function shareLooks(runner: Runner): Runner {
  const answers = new Map<string, Promise<CommandResult>>();
  return (argv, options) => {
    const looks = /-save$/.test(argv[0] ?? '') || argv[1] === '--version' || (argv[0] === 'nft' && argv[1] === 'list' && argv[2] === 'tables' && argv.length === 3);
    if (!looks || options?.input !== undefined) return runner(argv, options);
    const key = argv.join('\0');
    if (!answers.has(key)) answers.set(key, runner(argv, options));
    return answers.get(key)!;
  };
}

/**
 * The leftover checks selection will need whatever it finds, given only the flags: started before
 * the choice so they run while it is made. One that may turn out to be of our own form is not
 * started early when it could be costly (a full `iptables-nft-save` next to a big kube-proxy).
 */
function checkedBeforeChoice(target: CleanupTarget, o: SelectOptions): boolean {
  if (target.backend === 'nftables') return o.backend !== 'nftables';
  if (target.backend === 'iptables-legacy') return o.iptablesMode !== 'legacy' || o.backend === 'nftables';
  return o.backend === 'nftables' || o.iptablesMode === 'legacy';
}

/**
 * Creates the chosen backend and removes every other form the agent may have left (the nft table,
 * or our chain in the other iptables variant), so exactly one decides: whichever NAT rule runs
 * first would win otherwise.
 */
export async function selectBackend(o: SelectOptions): Promise<Backend> {
  const looks = shareLooks(o.runner);
  const targets = defaultCleanupTargets(o.chain, looks);
  // Independent checks run side by side, each once; their results are logged in the old order below.
  const check = memoByObject((target: CleanupTarget): Promise<Inspection> => {
    const found = target.inspect();
    // Awaited in the loop below; until then a failure must not count as unhandled.
    found.catch(() => undefined);
    return found;
  });
  for (const target of targets) if (checkedBeforeChoice(target, o)) void check(target);
  // `iptables-nft --version` is both auto's "is iptables installed" and the nft mode's version:
  // cheap (no kernel access), so asked now, beside the checks.
  if (o.backend !== 'nftables' && o.iptablesMode !== 'legacy') looks(['iptables-nft', '--version'], { timeoutMs: 10_000 }).catch(() => undefined);
  const { kind, reason } = await chooseBackendKind({ ...o, runner: looks });
  o.log.info('backend selected', { backend: kind, reason });
  const known = kind === 'nftables' ? 'nftables' : o.iptablesMode === 'auto' ? undefined : `iptables-${o.iptablesMode}`;
  if (known !== undefined) for (const target of targets) if (target.backend !== known) void check(target);
  const backend = kind === 'nftables' ? createNftablesBackend(o.runner) : await createIptablesBackendFor(o, looks);
  // Our nft table is ours alone, so a family turned off is removed; iptables' IPv6 tables are
  // left untouched with IPv6 off, as the reference agent leaves them.
  const ipv6Read = kind === 'nftables' && o.enableIPv6 === false ? backend.read('ipv6') : undefined;
  ipv6Read?.catch(() => undefined);
  const others = targets.filter((t) => t.backend !== backend.name);
  for (const target of others) void check(target);
  for (const target of others) {
    try {
      const found = await check(target);
      if (found.state !== 'present') continue;
      await target.remove();
      o.log.info('removed rules of a backend not in use', { where: target.name, removed: found.what });
    } catch (e) {
      o.log.warn('could not check or remove rules of a backend not in use', { where: target.name, error: (e as Error).message });
    }
  }
  if (ipv6Read !== undefined) {
    try {
      if (((await ipv6Read).owned ?? []).length > 0) {
        await backend.cleanup('ipv6');
        o.log.info('removed IPv6 objects of the nftables backend: IPv6 is not enabled');
      }
    } catch (e) {
      o.log.warn('could not remove IPv6 objects of the nftables backend', { error: (e as Error).message });
    }
  }
  return backend;
}
