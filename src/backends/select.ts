import type { Runner } from '../exec/runner.js';
import type { Logger } from '../observe/log.js';
import type { BackendChoice, IptablesMode } from '../cli/agent-options.js';
import { CommandError } from '../errors.js';
import type { Backend } from './backend.js';
import { createIptablesBackend } from './iptables/iptables-backend.js';
import { detectIptablesMode, iptablesVersion, supportsRandomFully } from './iptables/detect.js';
import { createNftablesBackend } from './nftables/nftables-backend.js';

/** What backend selection needs. */
export interface SelectOptions {
  readonly backend: BackendChoice;
  readonly iptablesMode: IptablesMode;
  readonly chain: string;
  readonly runner: Runner;
  readonly log: Logger;
}

async function installed(runner: Runner, argv: readonly string[]): Promise<boolean> {
  try {
    await runner(argv, { timeoutMs: 10_000 });
    return true;
  } catch (e) {
    return !(e instanceof CommandError && e.failure === 'not-installed');
  }
}

/** Whether kube-proxy runs in nftables mode here: it owns `ip kube-proxy` / `ip6 kube-proxy`. */
async function kubeProxyUsesNftables(runner: Runner): Promise<boolean> {
  try {
    const { stdout } = await runner(['nft', 'list', 'tables'], { timeoutMs: 10_000 });
    return /^table ip6? kube-proxy$/m.test(stdout);
  } catch {
    return false;
  }
}

/** Picks the nftables or iptables backend as --backend says, and says why. */
export async function chooseBackendKind(o: SelectOptions): Promise<{ kind: 'iptables' | 'nftables'; reason: string }> {
  if (o.backend !== 'auto') return { kind: o.backend, reason: `--backend=${o.backend}` };
  if (await kubeProxyUsesNftables(o.runner)) return { kind: 'nftables', reason: 'kube-proxy runs in nftables mode (table ip kube-proxy exists)' };
  const hasIptables = (await installed(o.runner, ['iptables-nft', '--version'])) || (await installed(o.runner, ['iptables-legacy', '--version']));
  if (!hasIptables) return { kind: 'nftables', reason: 'no iptables binary is installed' };
  return { kind: 'iptables', reason: 'iptables is installed and kube-proxy does not run in nftables mode' };
}

/** Builds the iptables backend for the host's iptables variant. */
export async function createIptablesBackendFor(o: SelectOptions): Promise<Backend> {
  const detected = o.iptablesMode === 'auto' ? await detectIptablesMode(o.runner) : { mode: o.iptablesMode, reason: `--iptables-mode=${o.iptablesMode}` };
  const version = await iptablesVersion(o.runner, detected.mode);
  const randomFullySupported = supportsRandomFully(version);
  o.log.info('iptables backend detected', { mode: detected.mode, reason: detected.reason, version, randomFullySupported });
  return createIptablesBackend({ runner: o.runner, mode: detected.mode, chain: o.chain, randomFullySupported });
}

/**
 * Creates the chosen backend and removes the other form, so exactly one is active:
 * the nft table when iptables is chosen; our iptables chains (both variants) when nftables is.
 */
export async function selectBackend(o: SelectOptions): Promise<Backend> {
  const { kind, reason } = await chooseBackendKind(o);
  o.log.info('backend selected', { backend: kind, reason });
  const families = ['ipv4', 'ipv6'] as const;
  if (kind === 'nftables') {
    for (const mode of ['nft', 'legacy'] as const) {
      if (!(await installed(o.runner, [`iptables-${mode}`, '--version']))) continue;
      const other = createIptablesBackend({ runner: o.runner, mode, chain: o.chain, randomFullySupported: true });
      for (const f of families) {
        // Listing a legacy table makes the kernel create it; look at the save output (no -t) first.
        if (mode === 'legacy' && !(await legacyChainExists(o.runner, f, o.chain))) continue;
        await removeOther(other, f, o.log);
      }
    }
    return createNftablesBackend({ runner: o.runner });
  }
  if (await installed(o.runner, ['nft', '--version'])) {
    const other = createNftablesBackend({ runner: o.runner });
    for (const f of families) await removeOther(other, f, o.log);
  }
  return createIptablesBackendFor(o);
}

async function removeOther(other: Backend, family: 'ipv4' | 'ipv6', log: Logger): Promise<void> {
  try {
    if ((await other.read(family)).length === 0) return;
    await other.cleanup(family);
    log.info('removed rules of the backend not in use', { backend: other.name, family });
  } catch (e) {
    log.warn('could not check or remove rules of the backend not in use', { backend: other.name, family, error: (e as Error).message });
  }
}

async function legacyChainExists(runner: Runner, family: 'ipv4' | 'ipv6', chain: string): Promise<boolean> {
  try {
    const bin = family === 'ipv4' ? 'iptables-legacy-save' : 'ip6tables-legacy-save';
    const { stdout } = await runner([bin], { timeoutMs: 30_000 });
    return stdout.split('\n').some((l) => l.startsWith(`:${chain} `));
  } catch {
    return false;
  }
}
