/** Address family of an IP address or CIDR. */
export type Family = 'ipv4' | 'ipv6';

/** A parsed, aligned CIDR block: `base` is the network address as an unsigned integer. */
export interface Cidr {
  readonly family: Family;
  readonly base: bigint;
  readonly prefix: number;
}

/** A parsed IP address. */
export interface IpAddress {
  readonly family: Family;
  readonly value: bigint;
}
