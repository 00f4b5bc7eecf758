// Everything users can see in iptables rules, in one place. These strings are part of the
// compatibility contract: the reference agent wrote them, and a node switching agents must
// see byte-identical rules (compat-contract.md).

/** Default nat chain name (`--masq-chain`). */
export const DEFAULT_CHAIN = 'IP-MASQ-AGENT';

/** Comment on each RETURN rule for an exempt (non-masquerade) destination. */
export const NON_MASQ_COMMENT = 'ip-masq-agent: local traffic is not subject to MASQUERADE';

/**
 * Comment on the first rule of our chain with `--postrouting-position=first`: traffic kube-proxy
 * marked for masquerade returns to POSTROUTING, where kube-proxy's rule masquerades it.
 */
export const KUBE_MARK_COMMENT = 'ip-masq-agent: traffic kube-proxy marked for masquerade goes on to its MASQUERADE rule';

/** Comment on the POSTROUTING line the read-back adds when our jump should be first and is not. */
export const NOT_FIRST_NOTE = '# ip-masq-agent: our jump is not the first rule of nat POSTROUTING; rule 1 is';

/** Comment on each MASQUERADE rule, including the `--to-ports` ones. */
export const MASQ_COMMENT = 'ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)';

/** Comment on each MASQUERADE rule of a masqueradeCIDRs entry (an exception inside an exempt range). */
export const MASQ_CIDR_COMMENT = 'ip-masq-agent: masqueradeCIDRs destination is subject to MASQUERADE';

/** Comment on each SNAT rule of a `snat` entry. */
export const SNAT_COMMENT = 'ip-masq-agent: snat destination leaves with a fixed source address';

/** The RETURN rules' comment of reference releases v1.x - v2.0.x (compat-contract.md). */
export const OLD_NON_MASQ_COMMENT = 'ip-masq-agent: cluster-local traffic should not be subject to MASQUERADE';

/** The MASQUERADE rule's comment of reference releases v1.x - v2.0.x (compat-contract.md). */
export const OLD_MASQ_COMMENT = 'ip-masq-agent: outbound traffic should be subject to MASQUERADE (this match must come after cluster-local CIDR matches)';

/** Every comment a rule of our chain carries, now or in an older reference release: a chain whose rules all do is ours, renamed or not. */
export const OUR_CHAIN_COMMENTS: readonly string[] = [NON_MASQ_COMMENT, KUBE_MARK_COMMENT, MASQ_COMMENT, MASQ_CIDR_COMMENT, SNAT_COMMENT, OLD_NON_MASQ_COMMENT, OLD_MASQ_COMMENT];

/** Note the read-back adds for a POSTROUTING rule that carries our jump's comment but leads to another chain. */
export const RENAMED_NOTE = "# ip-masq-agent: a POSTROUTING rule with our jump's comment leads to nat chain";

/** Comment on the POSTROUTING jump; it names the chain, so it changes with `--masq-chain`. */
export function jumpComment(chain: string): string {
  return `ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom ${chain} chain`;
}

/** Protocols that get explicit `--to-ports` rules (iptables and nftables alike), in the reference agent's order. */
export const TO_PORTS_PROTOCOLS = ['tcp', 'udp', 'sctp'] as const;

/** Seconds every iptables command may wait for the xtables lock (`-w`), as kube-proxy does. */
export const DEFAULT_WAIT_SECONDS = 5;

/** First iptables release whose MASQUERADE target knows `--random-fully`. */
export const RANDOM_FULLY_MIN_VERSION = '1.6.2';

/** Longest chain name iptables accepts (XT_EXTENSION_MAXNAMELEN - 1). */
export const MAX_CHAIN_NAME_LENGTH = 28;

/** The built-in chains of every iptables table: never ours to flush. */
export const BUILTIN_CHAINS: readonly string[] = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];

/**
 * Names `-j` reads as a verdict or a target rather than a chain: the built-in verdicts, the reserved
 * ERROR, and every target extension iptables 1.8 ships (the upper-case libxt_, libipt_, libip6t_ names).
 */
export const TARGET_NAMES: readonly string[] = [
  'ACCEPT',
  'DROP',
  'RETURN',
  'QUEUE',
  'ERROR',
  'AUDIT',
  'CHECKSUM',
  'CLASSIFY',
  'CLUSTERIP',
  'CONNMARK',
  'CONNSECMARK',
  'CT',
  'DNAT',
  'DNPT',
  'DSCP',
  'ECN',
  'HL',
  'HMARK',
  'IDLETIMER',
  'LED',
  'LOG',
  'MARK',
  'MASQUERADE',
  'NAT',
  'NETMAP',
  'NFLOG',
  'NFQUEUE',
  'NOTRACK',
  'RATEEST',
  'REDIRECT',
  'REJECT',
  'SECMARK',
  'SET',
  'SNAT',
  'SNPT',
  'SYNPROXY',
  'TCPMSS',
  'TCPOPTSTRIP',
  'TEE',
  'TOS',
  'TPROXY',
  'TRACE',
  'TTL',
  'ULOG',
];

/**
 * Prefixes of chains other node components create in the nat and filter tables, with their owner,
 * compared without regard to case. Taking such a name would let our restore flush their rules (the
 * `:CHAIN` line empties it) and `cleanup` delete them. The bare "KUBE" covers kube-router's too.
 */
export const FOREIGN_CHAIN_PREFIXES: readonly (readonly [prefix: string, owner: string])[] = [
  ['KUBE', 'Kubernetes (kubelet, kube-proxy, kube-router)'],
  ['CNI-', 'the CNI bridge and portmap plugins'],
  ['cali', 'Calico'],
  ['CILIUM', 'Cilium'],
  ['OLD_CILIUM', 'Cilium'],
  ['FLANNEL', 'flannel'],
  ['WEAVE', 'Weave Net'],
  ['ANTREA', 'Antrea'],
  ['AWS-', 'the AWS VPC CNI'],
  ['OVN-KUBE', 'OVN-Kubernetes'],
  ['DOCKER', 'Docker'],
  ['NETAVARK', 'Podman (netavark)'],
  ['ISTIO', 'Istio'],
  ['LIBVIRT', 'libvirt'],
];
