// Everything users can see in iptables rules, in one place. These strings are part of the
// compatibility contract: the reference agent wrote them, and a node switching agents must
// see byte-identical rules (compat-contract.md).

/** Default nat chain name (`--masq-chain`). */
export const DEFAULT_CHAIN = 'IP-MASQ-AGENT';

/** Comment on each RETURN rule for an exempt (non-masquerade) destination. */
export const NON_MASQ_COMMENT = 'ip-masq-agent: local traffic is not subject to MASQUERADE';

/** Comment on each MASQUERADE rule, including the `--to-ports` ones. */
export const MASQ_COMMENT = 'ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)';

/** Comment on the POSTROUTING jump; it names the chain, so it changes with `--masq-chain`. */
export function jumpComment(chain: string): string {
  return `ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom ${chain} chain`;
}

/** Protocols that get explicit `--to-ports` MASQUERADE rules, in rule order. */
export const TO_PORTS_PROTOCOLS = ['tcp', 'udp', 'sctp'] as const;

/** Seconds every iptables command may wait for the xtables lock (`-w`), as kube-proxy does. */
export const DEFAULT_WAIT_SECONDS = 5;

/** First iptables release whose MASQUERADE target knows `--random-fully`. */
export const RANDOM_FULLY_MIN_VERSION = '1.6.2';

/** Longest chain name iptables accepts (XT_EXTENSION_MAXNAMELEN - 1). */
export const MAX_CHAIN_NAME_LENGTH = 28;
