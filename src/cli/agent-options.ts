import { UsageError } from '../errors.js';
import { checkChainName } from '../backends/iptables/render.js';
import type { BackendChoice, IptablesModeChoice } from '../backends/select.js';
import { parseBindAddress } from '../server/bind-address.js';
import type { PolicyOptions } from '../policy/build.js';
import type { PortRange, PostroutingPosition } from '../policy/types.js';
import { quoteExcerpt } from '../excerpt.js';
import type { ParsedFlags } from './flags.js';
import { cidrCapForFlags } from '../limits.js';
import { parseGoDuration } from '../config/duration.js';

/** Everything the agent takes from its flags, typed and validated. */
export type AgentOptions = ReturnType<typeof agentOptionsFromFlags>;

/** Turns parsed flags into typed agent options; throws UsageError on a bad value. */
export function agentOptionsFromFlags(flags: ParsedFlags) {
  const get = (name: string): string => flags.values.get(name) ?? '';
  const bool = (name: string): boolean => get(name) === 'true';
  const enableIPv6 = bool('enable-ipv6');
  // A name iptables accepts as a chain, and one no other component owns.
  const chainProblem = checkChainName(get('masq-chain'));
  if (chainProblem) throw new UsageError(`--masq-chain: ${chainProblem}`);
  const policy: PolicyOptions = {
    enableIPv6,
    randomFully: bool('random-fully'),
    toPorts: parseToPorts(get('to-ports')),
    postroutingPosition: get('postrouting-position') as PostroutingPosition,
    masqueradeBit: parseMasqueradeBit(get('iptables-masquerade-bit')),
  };
  // Checked early, so that a typo is a usage error rather than a failed start.
  parseBindAddress(get('healthz-bind-address'), '--healthz-bind-address');
  parseBindAddress(get('metrics-bind-address'), '--metrics-bind-address');
  return {
    configPath: get('config'),
    chain: get('masq-chain'),
    config: { enableIPv6, nomasqAllReservedRanges: bool('nomasq-all-reserved-ranges'), cidrCap: cidrCapForFlags(get('backend'), get('iptables-mode')) },
    policy,
    backend: get('backend') as BackendChoice,
    iptablesMode: get('iptables-mode') as IptablesModeChoice,
    healthzBindAddress: get('healthz-bind-address'),
    metricsBindAddress: get('metrics-bind-address'),
    verbosity: Number(get('v')),
    /** `--command-timeout`: the deadline of each iptables/nft command, in milliseconds. */
    commandTimeoutMs: parseCommandTimeout(get('command-timeout')),
    /** `--conntrack-delete-tcp`: stale-NAT deletion takes tcp and sctp connections too. */
    conntrackDeleteTcp: bool('conntrack-delete-tcp'),
  };
}

/** Reads --command-timeout as Go reads a duration flag; a value out of range is a usage error. */
function parseCommandTimeout(text: string): number {
  let ns: bigint;
  try {
    ns = parseGoDuration(text);
  } catch (e) {
    throw new UsageError(`invalid value "${text}" for flag -command-timeout: ${(e as Error).message}`);
  }
  const ms = Number(ns / 1_000_000n);
  // Shorter would cut a normal restore, longer hides a hang.
  if (ms < 1000 || ms > 600_000) throw new UsageError(`invalid value "${text}" for flag -command-timeout: want 1s to 10m`);
  return ms;
}

/** Parses `--iptables-masquerade-bit` as kube-proxy does: an integer 0 to 31. */
export function parseMasqueradeBit(text: string): number {
  if (!/^\d{1,2}$/.test(text) || Number(text) > 31) {
    throw new UsageError(`invalid value ${quoteExcerpt(text, 40)} for flag -iptables-masquerade-bit: want an integer from 0 to 31 (kube-proxy's default is 14)`);
  }
  return Number(text);
}

/** Parses `--to-ports` (`1024-29999,32768-65535`, or single ports); empty text means none. */
export function parseToPorts(text: string): PortRange[] {
  if (text.trim() === '') return [];
  return text.split(',').map((part) => {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    const from = Number(m?.[1]);
    const to = m?.[2] === undefined ? from : Number(m[2]);
    if (!m || from < 1 || to > 65535 || from > to) {
      throw new UsageError(`--to-ports: "${part}" is not a port range; write PORT or FROM-TO with 1 <= FROM <= TO <= 65535, comma-separated (e.g. 1024-29999,32768-65535)`);
    }
    return { from, to, text: from === to ? `${from}` : `${from}-${to}` };
  });
}
