// Every name the nftables backend writes into the kernel, in one place.
import type { Family } from '../../net/cidr.js';

/** The nft family of our table: one inet table serves IPv4 and IPv6. */
export const NFT_TABLE_FAMILY = 'inet';

/** The one table this backend owns; it never touches any other. */
export const NFT_TABLE = 'ip-masq-agent';

/** `inet ip-masq-agent`, as nft commands name the table. */
export const NFT_TABLE_REF = `${NFT_TABLE_FAMILY} ${NFT_TABLE}`;

/** Per-family names: the set and base chain each family's apply replaces, the set's type, the address payload, the nfproto. */
export const NFT_NAMES: Readonly<Record<Family, Readonly<Record<'set' | 'chain' | 'setType' | 'payload' | 'nfproto', string>>>> = {
  ipv4: { set: 'nonmasq4', chain: 'postrouting4', setType: 'ipv4_addr', payload: 'ip', nfproto: 'ipv4' },
  ipv6: { set: 'nonmasq6', chain: 'postrouting6', setType: 'ipv6_addr', payload: 'ip6', nfproto: 'ipv6' },
};

/** Whether nft's `kind` `name` is one of the agent's sets or chains (any family). */
export function isAgentObject(kind: string, name: unknown): boolean {
  return Object.values(NFT_NAMES).some((n) => (kind === 'set' && name === n.set) || (kind === 'chain' && name === n.chain));
}

/** nft's numeric value of `priority srcnat` for a nat postrouting chain, as `nft -j` prints it. */
export const SRCNAT_PRIORITY = 100;

/**
 * The priority of our chain with `--postrouting-position=first`: srcnat - 1, so it runs before
 * every nat chain at srcnat (iptables-nft's nat POSTROUTING, kube-proxy's, a CNI's). Measured:
 * an `accept` there does not stop a later nat chain, but a NAT binding does (the kernel runs the
 * nat chains of a hook only until one sets up a binding for the connection).
 */
export const FIRST_PRIORITY = SRCNAT_PRIORITY - 1;
