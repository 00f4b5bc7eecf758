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

/** Link-local IPv4 range, exempt from masquerading unless `masqLinkLocal` is true. */
export const LINK_LOCAL_V4 = '169.254.0.0/16';

/** Link-local IPv6 range, exempt from masquerading unless `masqLinkLocalIPv6` is true. */
export const LINK_LOCAL_V6 = 'fe80::/10';

/** A CIDR or IP address that cannot be used; the message carries the reference agent's facts. */
export class CidrError extends Error {
  override readonly name = 'CidrError';
  constructor(
    readonly kind: 'unparsable' | 'misaligned' | 'mapped',
    message: string,
  ) {
    super(message);
  }
}

/** Address width of each family, in bits. */
export const BITS: Readonly<Record<Family, number>> = { ipv4: 32, ipv6: 128 };

/** Go's dtoi (base 10) and xtoi (base 16): digits from `start` to `end`; fails on none or on a value >= 0xFFFFFF. */
function goAtoi(s: string, base: 10 | 16, start = 0): { n: number; end: number; ok: boolean } {
  let n = 0;
  let i = start;
  for (; i < s.length; i++) {
    // A digit of the base, else -1 (a sign, a space); char codes, as 50,000 CIDRs are read at once.
    const c = s.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : base === 16 && c >= 97 && c <= 102 ? c - 87 : base === 16 && c >= 65 && c <= 70 ? c - 55 : -1;
    if (d < 0) break;
    n = n * base + d;
    // Go's net package gives up on a field at this value (dtoi/xtoi "big").
    if (n >= 0xffffff) return { n: 0, end: i, ok: false };
  }
  return { n, end: i, ok: i > start };
}

/** Go 1.19 net.parseIPv4 as a number (no bigint per field). */
function goParseIpv4Number(text: string): number | undefined {
  let value = 0;
  let i = 0;
  for (let field = 0; field < 4; field++) {
    if (field > 0) {
      if (text[i] !== '.') return undefined;
      i++;
    }
    const { n, end, ok } = goAtoi(text, 10, i);
    // Go rejects leading zeros ("010") since 1.17: other tools read them as octal.
    if (!ok || n > 0xff || (end - i > 1 && text[i] === '0')) return undefined;
    value = value * 256 + n;
    i = end;
  }
  return i === text.length ? value : undefined;
}

/** Go 1.19 net.parseIPv6 (no zones), returning the 128-bit value. */
function goParseIpv6(text: string): bigint | undefined {
  // At most one "::"; each side is hex groups, and only the very last group may be dotted IPv4.
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const words = halves.map(() => [] as number[]);
  for (const [h, half] of halves.entries()) {
    const groups = half === '' ? [] : half.split(':');
    for (const [g, group] of groups.entries()) {
      if (h === halves.length - 1 && g === groups.length - 1 && group.includes('.')) {
        const v4 = goParseIpv4Number(group);
        if (v4 === undefined) return undefined;
        words[h]!.push(v4 >>> 16, v4 & 0xffff);
        continue;
      }
      const { n, end, ok } = goAtoi(group, 16);
      if (!ok || end !== group.length || n > 0xffff) return undefined;
      words[h]!.push(n);
    }
  }
  const [head = [], tail] = words;
  const count = head.length + (tail?.length ?? 0);
  // Without "::" all eight groups; with it, it must stand for at least one zero group.
  if (tail === undefined ? count !== 8 : count > 7) return undefined;
  const all = [...head, ...new Array<number>(8 - count).fill(0), ...(tail ?? [])];
  return all.reduce((acc, w) => (acc << 16n) | BigInt(w), 0n);
}

/** Parses an address the way Go 1.19 does: IPv4 first, then IPv6. */
function goParseAddress(text: string): IpAddress | undefined {
  const v4 = goParseIpv4Number(text);
  if (v4 !== undefined) return { family: 'ipv4', value: BigInt(v4) };
  const v6 = goParseIpv6(text);
  return v6 === undefined ? undefined : { family: 'ipv6', value: v6 };
}

/** Whether an IPv6 value lies in ::ffff:0:0/96 (an IPv4 address written in IPv6 form). */
function isMapped(ip: IpAddress): boolean {
  return ip.family === 'ipv6' && ip.value >> 32n === 0xffffn;
}

function formatIpv4(value: bigint): string {
  const v = Number(value);
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/** Go's IP.String(), or with a prefix IPNet.String(): IPv4-mapped values print as dotted IPv4, as in the reference's messages. */
function goString(ip: IpAddress, prefix?: number): string {
  const v4 = isMapped(ip) && (prefix ?? 96) >= 96;
  const text = v4 ? formatIpv4(ip.value & 0xffffffffn) : formatIp(ip);
  return prefix === undefined ? text : `${text}/${v4 ? prefix - 96 : prefix}`;
}

/**
 * Parses CIDR text exactly as Go's net.ParseCIDR accepts it, then refuses misaligned blocks
 * (`10.0.0.1/8`) and IPv4-mapped IPv6 forms (`::ffff:10.0.0.0/104`).
 */
export function parseCidr(text: string): Cidr {
  const unparsable = () => new CidrError('unparsable', `CIDR "${text}" could not be parsed, invalid CIDR address: ${text}`);
  const slash = text.indexOf('/');
  if (slash < 0) throw unparsable();
  const ip = goParseAddress(text.slice(0, slash));
  const { n: prefix, end, ok } = goAtoi(text, 10, slash + 1);
  if (ip === undefined || !ok || end !== text.length || prefix > BITS[ip.family]) throw unparsable();
  const host = BigInt(BITS[ip.family] - prefix);
  const base = (ip.value >> host) << host;
  if (base !== ip.value) {
    throw new CidrError('misaligned', `CIDR "${text}" is not aligned to a CIDR block, ip: "${goString(ip)}" network: "${goString({ family: ip.family, value: base }, prefix)}"`);
  }
  if (isMapped(ip)) {
    // The reference would write this IPv6 text into an IPv4 rule; ask for the plain IPv4 form instead.
    throw new CidrError('mapped', `CIDR "${text}" is an IPv4-mapped IPv6 form; write the IPv4 form "${goString(ip, prefix)}" instead`);
  }
  return { family: ip.family, base, prefix };
}

/** Canonical text of a CIDR, as Go's IPNet.String() prints it (`10.0.0.0/8`, `2001:db8::/32`). */
export function formatCidr(c: Cidr): string {
  return `${formatIp({ family: c.family, value: c.base })}/${c.prefix}`;
}

/** Parses a single IPv4 or IPv6 address with Go's rules; refuses zones and IPv4-mapped IPv6 forms. */
export function parseIp(text: string): IpAddress {
  const ip = goParseAddress(text);
  if (ip === undefined) {
    throw new CidrError('unparsable', `IP address "${text}" could not be parsed, invalid IP address: ${text}`);
  }
  if (isMapped(ip)) {
    throw new CidrError('mapped', `IP address "${text}" is an IPv4-mapped IPv6 form; write the IPv4 form "${goString(ip)}" instead`);
  }
  return ip;
}

/** Canonical text of an address: dotted IPv4, or IPv6 compressed as Go prints it (lowercase, RFC 5952). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 'ipv4') return formatIpv4(ip.value);
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((ip.value >> s) & 0xffffn).toString(16));
  // The URL serialiser compresses as Go does (RFC 5952): the first longest run of two or more zero groups.
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

/** The last address of a block. */
export function cidrLast(c: Cidr): bigint {
  return c.base + (1n << BigInt(BITS[c.family] - c.prefix)) - 1n;
}

/** Whether the address lies inside the block (always false across families). */
export function cidrContains(c: Cidr, ip: IpAddress): boolean {
  return c.family === ip.family && ip.value >= c.base && ip.value <= cidrLast(c);
}

/** Whether every address of `inner` lies inside `outer` (always false across families). */
export function cidrContainsCidr(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && inner.base >= outer.base && cidrLast(inner) <= cidrLast(outer);
}
