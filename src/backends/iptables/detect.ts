// Which iptables flavour the host uses, decided the way kubernetes-sigs/iptables-wrappers does,
// so we write rules where kubelet and kube-proxy write theirs: mixing backends on one host means
// whichever NAT decision runs first wins.
import { CommandError } from '../../errors.js';
import { quoteExcerpt } from '../../excerpt.js';
import type { Runner } from '../../exec/runner.js';
import { RANDOM_FULLY_MIN_VERSION } from './constants.js';

/** The two iptables flavours: nf_tables-backed or the legacy x_tables kernel API. */
export type IptablesMode = 'nft' | 'legacy';

const DETECT_TIMEOUT_MS = 30_000;

// kubelet creates KUBE-IPTABLES-HINT (>= 1.24) and KUBE-KUBELET-CANARY (>= 1.17) in mangle.
const KUBELET_CHAIN = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY)/m;

/**
 * Runs one `*-save` like the wrapper's `(cmd || true) 2>/dev/null`: a failure counts as empty
 * output, except a missing binary, which no later step could make up for.
 */
async function saveOutput(runner: Runner, argv: readonly string[]): Promise<string> {
  try {
    return (await runner(argv, { timeoutMs: DETECT_TIMEOUT_MS })).stdout;
  } catch (e) {
    if (e instanceof CommandError && e.failure === 'not-installed') {
      throw e.restate(`${argv[0]} is not installed: detecting the host's iptables mode needs both the iptables-nft and iptables-legacy tools (${e.message})`);
    }
    return '';
  }
}

/**
 * Detects the host's iptables mode, and a sentence saying why (kubernetes-sigs/iptables-wrappers logic):
 * 1. kubelet's chains in `ip(6)tables-nft-save -t mangle` mean nft;
 * 2. else in `ip(6)tables-legacy-save` (no `-t`: asking for a table makes the kernel create it)
 *    they mean legacy;
 * 3. else legacy only when it holds strictly more rules than nft;
 * 4. else nft.
 */
export async function detectIptablesMode(runner: Runner): Promise<{ readonly mode: IptablesMode; readonly reason: string }> {
  for (const bin of ['iptables-nft-save', 'ip6tables-nft-save']) {
    const m = KUBELET_CHAIN.exec(await saveOutput(runner, [bin, '-t', 'mangle']));
    if (m) return { mode: 'nft', reason: `${bin} -t mangle shows kubelet's ${m[1]} chain` };
  }
  const legacy: string[] = [];
  for (const bin of ['iptables-legacy-save', 'ip6tables-legacy-save']) {
    const out = await saveOutput(runner, [bin]);
    const m = KUBELET_CHAIN.exec(out);
    if (m) return { mode: 'legacy', reason: `${bin} shows kubelet's ${m[1]} chain` };
    legacy.push(out);
  }
  const nft = await Promise.all(['iptables-nft-save', 'ip6tables-nft-save'].map((bin) => saveOutput(runner, [bin])));
  const rules = (dumps: string[]): number => dumps.flatMap((d) => d.split('\n')).filter((l) => l.startsWith('-')).length;
  const [legacyRules, nftRules] = [rules(legacy), rules(nft)];
  if (legacyRules > nftRules) {
    return { mode: 'legacy', reason: `no kubelet chains found; legacy has more rules than nft (${legacyRules} > ${nftRules})` };
  }
  return { mode: 'nft', reason: `no kubelet chains found and legacy has no more rules than nft (${legacyRules} <= ${nftRules}): nft by default` };
}

/** The version `iptables-MODE --version` reports, e.g. `1.8.9`. */
export async function iptablesVersion(runner: Runner, mode: IptablesMode): Promise<string> {
  const argv = [`iptables-${mode}`, '--version'];
  const { stdout, stderr } = await runner(argv, { timeoutMs: DETECT_TIMEOUT_MS });
  const m = /v(\d+\.\d+(?:\.\d+)?)/.exec(stdout);
  if (!m?.[1]) {
    throw new CommandError(argv, 0, stderr, 'other', `${argv.join(' ')}: no version in output ${quoteExcerpt(stdout.trim())}`);
  }
  return m[1];
}

const versionParts = (version: string): number[] => version.split('.').map((p) => Number.parseInt(p, 10) || 0);

/**
 * Whether this iptables version's MASQUERADE knows `--random-fully` (>= 1.6.2). Compared by hand:
 * a numeric localeCompare loads ICU's collation data, about 3 MiB resident for the agent's life (measured).
 */
export function supportsRandomFully(version: string): boolean {
  const [have, need] = [versionParts(version), versionParts(RANDOM_FULLY_MIN_VERSION)];
  const i = need.findIndex((n, j) => (have[j] ?? 0) !== n);
  return i < 0 || (have[i] ?? 0) > (need[i] ?? 0);
}
