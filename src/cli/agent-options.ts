import { UsageError } from '../errors.js';
import { checkChainName } from '../backends/iptables/render.js';
import type { BackendChoice, IptablesModeChoice } from '../backends/select.js';
import { parseBindAddress } from '../server/bind-address.js';
import type { PolicyOptions } from '../policy/build.js';
import type { PortRange, PostroutingPosition } from '../policy/types.js';
import { quoteExcerpt } from '../excerpt.js';
import type { ConfigOptions } from '../config/config.js';
import type { ParsedFlags } from './flags.js';
import { cidrCapForFlags } from '../limits.js';
import { parseGoDuration } from '../config/duration.js';

/** Everything the agent takes from its flags, typed and validated. */
export interface AgentOptions {
  readonly configPath: string;
  readonly chain: string;
  readonly config: ConfigOptions;
  readonly policy: PolicyOptions;
  readonly backend: BackendChoice;
  readonly iptablesMode: IptablesModeChoice;
  readonly healthzBindAddress: string;
  readonly metricsBindAddress: string;
  readonly verbosity: number;
  /** `--command-timeout`: the deadline of each iptables/nft command, in milliseconds. */
  readonly commandTimeoutMs: number;
}

/** The range --command-timeout accepts: shorter would cut a normal restore, longer hides a hang. */
export const COMMAND_TIMEOUT_RANGE_MS = { min: 1000, max: 600_000 } as const;

/** Checks --masq-chain: a name iptables accepts as a chain, and one no other component owns. */
export function validateChainName(name: string): string {
  const problem = checkChainName(name);
  if (problem) throw new UsageError(`--masq-chain: ${problem}`);
  return name;
}

/** Turns parsed flags into typed agent options; throws UsageError on a bad value. */
export function agentOptionsFromFlags(flags: ParsedFlags): AgentOptions {
  const get = (name: string): string => flags.values.get(name) ?? '';
  const bool = (name: string): boolean => get(name) === 'true';
  const enableIPv6 = bool('enable-ipv6');
  return {
    configPath: get('config'),
    chain: validateChainName(get('masq-chain')),
    config: { enableIPv6, nomasqAllReservedRanges: bool('nomasq-all-reserved-ranges'), cidrCap: cidrCapForFlags(get('backend'), get('iptables-mode')) },
    policy: {
      enableIPv6,
      randomFully: bool('random-fully'),
      toPorts: parseToPorts(get('to-ports')),
      postroutingPosition: get('postrouting-position') as PostroutingPosition,
      masqueradeBit: parseMasqueradeBit(get('iptables-masquerade-bit')),
    },
    backend: get('backend') as BackendChoice,
    iptablesMode: get('iptables-mode') as IptablesModeChoice,
    healthzBindAddress: checkBindAddress(get('healthz-bind-address'), '--healthz-bind-address'),
    metricsBindAddress: checkBindAddress(get('metrics-bind-address'), '--metrics-bind-address'),
    verbosity: Number(get('v')),
    commandTimeoutMs: parseCommandTimeout(get('command-timeout')),
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
  const { min, max } = COMMAND_TIMEOUT_RANGE_MS;
  if (ms < min || ms > max) throw new UsageError(`invalid value "${text}" for flag -command-timeout: want 1s to 10m`);
  return ms;
}

/** Checks a bind address flag early, so a typo is a usage error rather than a failed start. */
function checkBindAddress(text: string, flag: string): string {
  parseBindAddress(text, flag);
  return text;
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
