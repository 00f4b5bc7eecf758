// Pure rendering of a FamilyPolicy into what iptables reads (the `iptables-restore` payload)
// and into what iptables prints back (`iptables -S`), so a read-back compares byte for byte.
//
// The printed form was measured with iptables 1.8.9 inside network namespaces, and is the same
// for iptables-nft and iptables-legacy:
//   -A C -d 10.0.0.0/8 -m comment --comment "..." -j RETURN        (-d moves before -m comment)
//   -A C -p tcp -m comment --comment "..." -m statistic --mode random --probability 0.49999237061 -j MASQUERADE --to-ports 1024-29999 --random-fully
//   -A C -m comment --comment "..." -j MASQUERADE --random-fully
// The probability comes back as the kernel stores it: lround(P * 2^31) / 2^31, printed `%.11f`.
import type { Cidr, IpAddress } from '../../net/cidr.js';
import { decisionTable, usesDecisionRules, type Decision } from '../../policy/decide.js';
import { quoteExcerpt } from '../../excerpt.js';
import type { FamilyPolicy, PortRange } from '../../policy/types.js';
import { exemptionIsFinal, masqueradeMarkHex } from '../../policy/build.js';
import {
  BUILTIN_CHAINS,
  FOREIGN_CHAIN_PREFIXES,
  KUBE_MARK_COMMENT,
  MASQ_CIDR_COMMENT,
  MASQ_COMMENT,
  MAX_CHAIN_NAME_LENGTH,
  NON_MASQ_COMMENT,
  SNAT_COMMENT,
  TARGET_NAMES,
  TO_PORTS_PROTOCOLS,
  jumpComment,
} from './constants.js';
import { quoteRuleArg } from './rules.js';

/** What shapes the rendered rules besides the policy itself. */
export interface RenderOptions {
  /** The nat chain name (`--masq-chain`). */
  readonly chain: string;
  /** Effective `--random-fully`: requested by the policy AND supported by the binary. */
  readonly randomFully: boolean;
}

/**
 * Says what is wrong with a chain name for our chain, or undefined when it is fine: a name
 * iptables rejects or reads as something else, or one that belongs to another component
 * (taking it would overwrite that component's rules, and `cleanup` would flush them).
 */
export function checkChainName(chain: string): string | undefined {
  if (chain.length === 0) return 'chain name is empty';
  const shown = quoteExcerpt(chain, 40);
  const bytes = Buffer.byteLength(chain, 'utf8');
  if (bytes > MAX_CHAIN_NAME_LENGTH) {
    return `chain name ${shown} is ${bytes} bytes long (UTF-8); iptables allows at most ${MAX_CHAIN_NAME_LENGTH}`;
  }
  // Quotes and whitespace would break the restore payload's quoting; a leading '-' or '!'
  // would be read as an option or a negation; control characters garble every message.
  // eslint-disable-next-line no-control-regex -- matching control characters is the point of this check
  if (/[\s"'\\\x00-\x1f\x7f]/.test(chain) || /^[-!]/.test(chain)) {
    return `chain name ${shown} may not contain whitespace, quotes or control characters, nor start with '-' or '!'`;
  }
  const upper = chain.toUpperCase();
  if (BUILTIN_CHAINS.includes(upper)) return `${shown} is a built-in chain; the agent needs a chain of its own`;
  if (TARGET_NAMES.includes(upper)) {
    return `${shown} is the name of an iptables target (${TARGET_NAMES.slice(0, 6).join(', ')}, ...); a chain of that name cannot be jumped to`;
  }
  const owner = FOREIGN_CHAIN_PREFIXES.find(([prefix]) => upper.startsWith(prefix.toUpperCase()));
  if (owner) return `${shown} starts with ${JSON.stringify(owner[0])}, the prefix of ${owner[1]}'s chains; choose a name of the agent's own, e.g. IP-MASQ-AGENT`;
  return undefined;
}

/**
 * Formats a finite non-negative double with `digits` decimals from its exact binary value,
 * rounding an exact tie to even: what Go's `%0.10f` and glibc's `printf("%.11f")` both do.
 * (Number.prototype.toFixed rounds ties up, which differs on values like 1/2048.)
 */
export function formatFixedExact(x: number, digits: number): string {
  if (!Number.isFinite(x) || x < 0) throw new RangeError(`cannot format ${x}`);
  let mantissa = x;
  let exponent = 0;
  // Doubling a double is exact, so this finds x = mantissa / 2^exponent with integer mantissa.
  while (!Number.isInteger(mantissa)) {
    mantissa *= 2;
    exponent += 1;
  }
  const den = 1n << BigInt(exponent);
  const scaled = BigInt(mantissa) * 10n ** BigInt(digits);
  let q = scaled / den;
  const twice = (scaled % den) * 2n;
  if (twice > den || (twice === den && q % 2n === 1n)) q += 1n;
  const text = q.toString().padStart(digits + 1, '0');
  return digits === 0 ? text : `${text.slice(0, -digits)}.${text.slice(-digits)}`;
}

function portRangeSize(r: PortRange): number {
  return r.to - r.from + 1;
}

/**
 * The `--probability` text of each `--to-ports` range but the last, as the reference writes it:
 * P(i) = size(R_i) / (size(R_i) + ... + size(R_last)), formatted `%0.10f`. Chained rules with these
 * probabilities spread new connections over the ranges in proportion to their sizes.
 */
export function toPortsProbabilities(ranges: readonly PortRange[]): string[] {
  const out: string[] = [];
  let remaining = ranges.reduce((sum, r) => sum + portRangeSize(r), 0);
  for (const r of ranges.slice(0, -1)) {
    out.push(formatFixedExact(portRangeSize(r) / remaining, 10));
    remaining -= portRangeSize(r);
  }
  return out;
}

/**
 * How iptables prints a `--probability` back: the statistic match stores lround(P * 2^31) and
 * prints that fraction of 2^31 with `%.11f` (same in iptables-nft and iptables-legacy).
 */
export function savedProbability(written: string): string {
  const stored = Math.round(Number.parseFloat(written) * 0x80000000);
  return formatFixedExact(stored / 0x80000000, 11);
}

function formatIpv4(value: bigint): string {
  // One bigint conversion, then 32-bit number arithmetic: this runs once per rule (50,000 at the cap).
  const n = Number(value);
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

// glibc inet_ntop: compress the first longest run (>= 2) of zero words, and print the last 32
// bits as dotted IPv4 for IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d) forms.
function formatIpv6(value: bigint): string {
  const words = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && words[i] === 0) {
      cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 };
    } else if (cur.base !== -1) {
      if (best.base === -1 || cur.len > best.len) best = cur;
      cur = { base: -1, len: 0 };
    }
  }
  if (best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && words[5] === 0xffff))) {
      out += formatIpv4(value & 0xffffffffn);
      return out;
    }
    out += (words[i] ?? 0).toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':';
  return out;
}

/** A CIDR as iptables prints it after `-d` (address via inet_ntop, then `/prefix`). */
export function formatSavedCidr(cidr: Cidr): string {
  const address = cidr.family === 'ipv4' ? formatIpv4(cidr.base) : formatIpv6(cidr.base);
  return `${address}/${cidr.prefix}`;
}

function portsText(r: PortRange): string {
  return r.from === r.to ? String(r.from) : `${r.from}-${r.to}`;
}

function assertFamily(policy: FamilyPolicy): void {
  for (const e of [...policy.exempt, ...(policy.actions ?? []), ...(policy.sources ?? [])]) {
    if (e.cidr.family !== policy.family) {
      throw new Error(`exempt range ${e.text} (${e.cidr.family}) in the ${policy.family} policy`);
    }
  }
}

/**
 * How an exempt destination leaves our chain: RETURN goes on through POSTROUTING (the
 * reference's; a later MASQUERADE rule may still translate it), ACCEPT ends the nat POSTROUTING
 * traversal for the packet (`--postrouting-position=first`).
 */
export function exemptionTarget(policy: FamilyPolicy): 'RETURN' | 'ACCEPT' {
  return exemptionIsFinal(policy) ? 'ACCEPT' : 'RETURN';
}

/**
 * The rules before the exemptions, as `-A` lines without the `-A CHAIN ` head (restore and `-S`
 * print them alike): with `first`, traffic kube-proxy marked returns to POSTROUTING so that
 * kube-proxy's MASQUERADE rule still sees it (NodePort, hairpin); none with `append`.
 */
export function preludeRuleBodies(policy: FamilyPolicy): string[] {
  if (!exemptionIsFinal(policy)) return [];
  const mark = masqueradeMarkHex(policy.masqueradeBit);
  return [`-m mark --mark ${mark}/${mark} -m comment --comment ${quoteRuleArg(KUBE_MARK_COMMENT)} -j RETURN`];
}

/** The prelude rules as `-A CHAIN ...` lines; restore and `-S` print them alike. */
function preludeLines(policy: FamilyPolicy, chain: string): string[] {
  return preludeRuleBodies(policy).map((r) => `-A ${chain} ${r}`);
}

/**
 * The exact `iptables-restore --noflush` payload the reference writes for one family: the
 * `:CHAIN - [0:0]` line creates or flushes only our chain, atomically with the new rules.
 */
export function renderRestorePayload(policy: FamilyPolicy, opts: RenderOptions): string {
  assertFamily(policy);
  if (usesDecisionRules(policy)) {
    const rules = decisionRules(policy).map((r) => formatRule(r, opts, 'restore'));
    return `${['*nat', `:${opts.chain} - [0:0]`, ...preludeLines(policy, opts.chain), ...rules, 'COMMIT'].join('\n')}\n`;
  }
  const { chain } = opts;
  const masq = `-A ${chain} -m comment --comment "${MASQ_COMMENT}" -j MASQUERADE${opts.randomFully ? ' --random-fully' : ''}`;
  const lines = ['*nat', `:${chain} - [0:0]`, ...preludeLines(policy, chain)];
  const head = `-A ${chain} -m comment --comment "${NON_MASQ_COMMENT}" -d `;
  const tail = ` -j ${exemptionTarget(policy)}`;
  for (const e of policy.exempt) lines.push(head + e.text + tail);
  const probabilities = toPortsProbabilities(policy.toPorts);
  for (const proto of TO_PORTS_PROTOCOLS) {
    policy.toPorts.forEach((r, i) => {
      const p = probabilities[i];
      const statistic = p === undefined ? '' : ` -m statistic --mode random --probability ${p}`;
      lines.push(`${masq} -p ${proto}${statistic} --to-ports ${r.text}`);
    });
  }
  lines.push(masq, 'COMMIT');
  return `${lines.join('\n')}\n`;
}

/** One rule of our chain as data, rendered to both the restore and the `-S` form by formatRule. */
interface ChainRule {
  readonly src?: Cidr;
  readonly dst?: Cidr;
  readonly proto?: string;
  readonly comment: string;
  /** The `--probability` as written (restore form). */
  readonly probability?: string;
  readonly target: 'RETURN' | 'ACCEPT' | 'MASQUERADE' | 'SNAT';
  readonly toSource?: IpAddress;
  readonly ports?: PortRange;
}

/** The translating rules for one destination (or every one): the --to-ports spread, then the catch-all, per source. */
function translateRules(policy: FamilyPolicy, dst: Cidr | undefined, target: 'MASQUERADE' | 'SNAT', comment: string, toSource?: IpAddress): ChainRule[] {
  const sources: (Cidr | undefined)[] = policy.sources === undefined ? [undefined] : policy.sources.map((s) => s.cidr);
  const probabilities = toPortsProbabilities(policy.toPorts);
  const common = { comment, target, ...(dst === undefined ? {} : { dst }), ...(toSource === undefined ? {} : { toSource }) };
  const rules: ChainRule[] = [];
  for (const src of sources) {
    const from = src === undefined ? {} : { src };
    for (const proto of TO_PORTS_PROTOCOLS) {
      policy.toPorts.forEach((ports, i) => {
        const p = probabilities[i];
        rules.push({ ...common, ...from, proto, ports, ...(p === undefined ? {} : { probability: p }) });
      });
    }
    rules.push({ ...common, ...from });
  }
  return rules;
}

function rowRules(policy: FamilyPolicy, row: Decision): ChainRule[] {
  switch (row.action.kind) {
    case 'keep':
      return [{ dst: row.cidr, comment: NON_MASQ_COMMENT, target: exemptionTarget(policy) }];
    case 'masquerade':
      return translateRules(policy, row.cidr, 'MASQUERADE', MASQ_CIDR_COMMENT);
    case 'snat':
      return translateRules(policy, row.cidr, 'SNAT', SNAT_COMMENT, row.action.toSource);
  }
}

/**
 * The chain in longest-prefix order: each row of the decision table (longest first, so the first
 * rule that matches is the longest prefix), then the default MASQUERADE. Exempt rules need no
 * source match (nothing happens either way); translating rules repeat per masqueradeSourceCIDRs
 * entry, so a source outside them falls off the chain's end untouched.
 */
function decisionRules(policy: FamilyPolicy): ChainRule[] {
  return [...decisionTable(policy).flatMap((row) => rowRules(policy, row)), ...translateRules(policy, undefined, 'MASQUERADE', MASQ_COMMENT)];
}

function savedAddress(ip: IpAddress): string {
  const text = formatSavedCidr({ family: ip.family, base: ip.value, prefix: ip.family === 'ipv4' ? 32 : 128 });
  return text.slice(0, text.lastIndexOf('/'));
}

/**
 * A chain rule as iptables-restore reads it, or as `iptables -S` prints it. Both put the matches
 * in the order -S uses (-s, -d, -p, comment, statistic), so the two differ only where iptables
 * rewrites values: quoting, /0 dropped, addresses via inet_ntop, probabilities as stored.
 */
function formatRule(r: ChainRule, opts: RenderOptions, form: 'restore' | 'save'): string {
  const save = form === 'save';
  const cidr = (flag: string, c: Cidr | undefined): string => {
    if (c === undefined || (save && c.prefix === 0)) return '';
    return ` ${flag} ${formatSavedCidr(c)}`;
  };
  let line = `-A ${opts.chain}${cidr('-s', r.src)}${cidr('-d', r.dst)}${r.proto === undefined ? '' : ` -p ${r.proto}`}`;
  line += ` -m comment --comment ${save ? quoteRuleArg(r.comment) : `"${r.comment}"`}`;
  if (r.probability !== undefined) line += ` -m statistic --mode random --probability ${save ? savedProbability(r.probability) : r.probability}`;
  if (r.target === 'RETURN' || r.target === 'ACCEPT') return `${line} -j ${r.target}`;
  const fully = opts.randomFully ? ' --random-fully' : '';
  if (r.target === 'MASQUERADE') return `${line} -j MASQUERADE${r.ports === undefined ? '' : ` --to-ports ${portsText(r.ports)}`}${fully}`;
  const addr = savedAddress(r.toSource!);
  const to = r.ports === undefined ? addr : `${r.toSource!.family === 'ipv6' ? `[${addr}]` : addr}:${portsText(r.ports)}`;
  return `${line} -j SNAT --to-source ${to}${fully}`;
}

/**
 * The POSTROUTING jump as argv after `-t nat -C|-A|-D POSTROUTING`; the comment is one
 * element, unquoted, since no shell is involved.
 */
export function jumpRuleSpec(chain: string): string[] {
  return ['-m', 'comment', '--comment', jumpComment(chain), '-m', 'addrtype', '!', '--dst-type', 'LOCAL', '-j', chain];
}

/** The POSTROUTING jump as `iptables -t nat -S POSTROUTING` prints it. */
export function renderJumpSaveLine(chain: string): string {
  return `-A POSTROUTING -m comment --comment ${quoteRuleArg(jumpComment(chain))} -m addrtype ! --dst-type LOCAL -j ${chain}`;
}

/**
 * Our chain as `iptables -t nat -S CHAIN` prints it once the payload is applied. A plain policy
 * (today's keys only) gets the same lines formatRule would print, written directly: through
 * ChainRule objects 50,000 exempt rules took 80-120 ms instead of 33-39 (measured), on every
 * config change.
 */
export function renderChainSaveLines(policy: FamilyPolicy, opts: RenderOptions): string[] {
  assertFamily(policy);
  if (usesDecisionRules(policy)) return [`-N ${opts.chain}`, ...preludeLines(policy, opts.chain), ...decisionRules(policy).map((r) => formatRule(r, opts, 'save'))];
  const { chain } = opts;
  const fully = opts.randomFully ? ' --random-fully' : '';
  const masqComment = `-m comment --comment ${quoteRuleArg(MASQ_COMMENT)}`;
  const lines = [`-N ${chain}`, ...preludeLines(policy, chain)];
  const tail = ` -m comment --comment ${quoteRuleArg(NON_MASQ_COMMENT)} -j ${exemptionTarget(policy)}`;
  const head = `-A ${chain}`;
  const headD = `${head} -d `;
  for (const e of policy.exempt) {
    // iptables drops a match-everything destination (/0) from its output. An IPv4 range's
    // canonical text is what iptables prints: formatting the address again took 30-40 ms of
    // this function's 40 at 50,000 rules (measured); IPv6 goes through inet_ntop's form.
    if (e.cidr.prefix === 0) lines.push(head + tail);
    else lines.push(headD + (e.cidr.family === 'ipv4' ? e.text : formatSavedCidr(e.cidr)) + tail);
  }
  const probabilities = toPortsProbabilities(policy.toPorts).map(savedProbability);
  for (const proto of TO_PORTS_PROTOCOLS) {
    policy.toPorts.forEach((r, i) => {
      const p = probabilities[i];
      const statistic = p === undefined ? '' : ` -m statistic --mode random --probability ${p}`;
      lines.push(`-A ${chain} -p ${proto} ${masqComment}${statistic} -j MASQUERADE --to-ports ${portsText(r)}${fully}`);
    });
  }
  lines.push(`-A ${chain} ${masqComment} -j MASQUERADE${fully}`);
  return lines;
}

/**
 * Everything the backend reads back after the payload and the jump are in place, in read()
 * order: the POSTROUTING jump line, then the chain's `-S` lines. iptables-nft and
 * iptables-legacy print these identically (measured with 1.8.9), so one function serves both.
 */
export function renderSaveLines(policy: FamilyPolicy, opts: RenderOptions): string[] {
  return [renderJumpSaveLine(opts.chain), ...renderChainSaveLines(policy, opts)];
}
