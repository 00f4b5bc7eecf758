// Our iptables rules as data, formatted twice: into what iptables reads (the `iptables-restore`
// payload) and into what iptables prints back (`iptables -S`), so a read-back compares byte for
// byte. One builder makes the rule objects for every policy; both texts come from them.
//
// The printed form was measured with iptables 1.8.9 inside network namespaces, and is the same
// for iptables-nft and iptables-legacy: -s, -d and -p first (`-d` moves before `-m comment`), then
// the -m modules in the order given, then the target with its options (--random-fully last).
import { formatIp, type Cidr, type IpAddress } from '../../net/cidr.js';
import { decisionTable, usesDecisionRules } from '../../policy/decide.js';
import { quoteExcerpt } from '../../excerpt.js';
import type { CountedDecision, FamilyPolicy, PortRange } from '../../policy/types.js';
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
import { natPayload, quoteRuleArg, splitRuleArgs } from './rules.js';

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

/**
 * The `--probability` text of each `--to-ports` range but the last, as the reference writes it:
 * P(i) = size(R_i) / (size(R_i) + ... + size(R_last)), formatted `%0.10f`. Chained rules with these
 * probabilities spread new connections over the ranges in proportion to their sizes.
 */
export function toPortsProbabilities(ranges: readonly PortRange[]): string[] {
  const sizes = ranges.map((r) => r.to - r.from + 1);
  let remaining = sizes.reduce((sum, n) => sum + n, 0);
  return sizes.slice(0, -1).map((n) => {
    const p = formatFixedExact(n / remaining, 10);
    remaining -= n;
    return p;
  });
}

/**
 * How iptables prints a `--probability` back: the statistic match stores lround(P * 2^31) and
 * prints that fraction of 2^31 with `%.11f` (same in iptables-nft and iptables-legacy).
 */
export function savedProbability(written: string): string {
  const stored = Math.round(Number.parseFloat(written) * 0x80000000);
  return formatFixedExact(stored / 0x80000000, 11);
}

/**
 * An address as iptables prints it (glibc inet_ntop): RFC 5952 text, except that IPv4-compatible
 * (::a.b.c.d, with a.b not 0) and IPv4-mapped (::ffff:a.b.c.d) addresses print their last 32 bits dotted.
 */
function savedAddress(ip: IpAddress): string {
  const high = ip.value >> 32n;
  if (ip.family === 'ipv4' || (high !== 0n && high !== 0xffffn) || ip.value >> 16n === 0n) return formatIp(ip);
  return `::${high === 0n ? '' : 'ffff:'}${formatIp({ family: 'ipv4', value: ip.value & 0xffffffffn })}`;
}

/** A CIDR as iptables prints it after `-d` (address via inet_ntop, then `/prefix`). */
export function formatSavedCidr(cidr: Cidr): string {
  return `${savedAddress({ family: cidr.family, value: cidr.base })}/${cidr.prefix}`;
}

/** One part of a rule besides its addresses: a match (protocol, `-m` module), the target, or a target option. */
export type RulePart =
  | { readonly kind: 'protocol'; readonly name: string }
  | { readonly kind: 'comment'; readonly text: string }
  /** `--probability` as written; iptables prints it as stored. */
  | { readonly kind: 'statistic'; readonly probability: string }
  /** A module printed alike in both forms, e.g. `-m mark --mark 0x4000/0x4000`. */
  | { readonly kind: 'module'; readonly text: string }
  | { readonly kind: 'jump'; readonly target: string }
  /** A target option printed alike in both forms, e.g. `--to-ports 1024-29999`. */
  | { readonly kind: 'option'; readonly text: string }
  | { readonly kind: 'random-fully' };

/**
 * What many rules share: their chain and parts, formatted once. Only the addresses vary from rule
 * to rule (up to 50,000 exempt ranges), and each form writes them in one place: `-s` then `-d`.
 */
export interface RuleShape {
  /** The restore text before and after the addresses. */
  readonly restore: readonly [string, string];
  /** The `-S` text before and after the addresses. */
  readonly save: readonly [string, string];
}

/** A `-s` or `-d` range; `text` is what the payload writes (an IPv4 one is canonical: what iptables prints). */
export interface AddressMatch {
  readonly cidr: Cidr;
  readonly text: string;
}

/** One rule as data: its shape and the addresses it matches. */
export interface Rule {
  readonly shape: RuleShape;
  readonly src?: AddressMatch | undefined;
  readonly dst?: AddressMatch | undefined;
  /** The decision whose connections the rule's counter counts; absent for the prelude. */
  readonly decides?: CountedDecision;
}

/** A part as the restore payload writes it, or as `-S` prints it (probability as stored, xtables_save_string quoting). */
function partText(p: RulePart, save: boolean): string {
  if (p.kind === 'protocol') return `-p ${p.name}`;
  if (p.kind === 'comment') return `-m comment --comment ${save ? quoteRuleArg(p.text) : `"${p.text}"`}`;
  if (p.kind === 'statistic') return `-m statistic --mode random --probability ${save ? savedProbability(p.probability) : p.probability}`;
  if (p.kind === 'jump') return `-j ${p.target}`;
  return p.kind === 'random-fully' ? '--random-fully' : p.text;
}

// Where `-S` prints a part: -p, the modules in the model's order, the target, its options, --random-fully.
const SAVE_RANK: Readonly<Record<RulePart['kind'], number>> = { protocol: 0, comment: 1, statistic: 1, module: 1, jump: 2, option: 3, 'random-fully': 4 };

/** A rule shape with its texts; `addressesAt` parts come before the addresses in the restore form. */
export function ruleShape(chain: string, parts: readonly (RulePart | undefined)[], addressesAt = 0): RuleShape {
  const given = parts.filter((p) => p !== undefined);
  const restore = given.map((p) => ` ${partText(p, false)}`);
  const save = [...given].sort((a, b) => SAVE_RANK[a.kind] - SAVE_RANK[b.kind]).map((p) => ` ${partText(p, true)}`);
  const [before, after] = [restore.slice(0, addressesAt).join(''), restore.slice(addressesAt).join('')];
  return { restore: [`-A ${chain}${before}`, after], save: [`-A ${chain}`, save.join('')] };
}

/** A rule as iptables-restore reads it: `-A CHAIN`, then its parts in the model's order. */
export function formatRestoreRule({ shape, src, dst }: Rule): string {
  return `${shape.restore[0]}${src === undefined ? '' : ` -s ${src.text}`}${dst === undefined ? '' : ` -d ${dst.text}`}${shape.restore[1]}`;
}

// iptables prints no /0 range, and an address via inet_ntop; an IPv4 text already is that form
// (formatting the address again took 30-40 ms of 40 at 50,000 rules, measured).
function savedMatch(flag: string, a: AddressMatch | undefined): string {
  if (a === undefined || a.cidr.prefix === 0) return '';
  return ` ${flag} ${a.cidr.family === 'ipv4' ? a.text : formatSavedCidr(a.cidr)}`;
}

/** A rule as `iptables -S` prints it: `-A CHAIN`, -s, -d, then the shape's parts in iptables' order. */
export function formatSaveRule({ shape, src, dst }: Rule): string {
  return `${shape.save[0]}${savedMatch('-s', src)}${savedMatch('-d', dst)}${shape.save[1]}`;
}

const comment = (text: string): RulePart => ({ kind: 'comment', text });
const jump = (target: string): RulePart => ({ kind: 'jump', target });

/**
 * The rules before the exemptions: with `first`, traffic kube-proxy marked returns to
 * POSTROUTING so that kube-proxy's MASQUERADE rule still sees it (NodePort, hairpin); none with `append`.
 */
function preludeRules(policy: FamilyPolicy, chain: string): Rule[] {
  if (!exemptionIsFinal(policy)) return [];
  const mark = masqueradeMarkHex(policy.masqueradeBit);
  return [{ shape: ruleShape(chain, [{ kind: 'module', text: `-m mark --mark ${mark}/${mark}` }, comment(KUBE_MARK_COMMENT), jump('RETURN')]) }];
}

/**
 * Every rule of our chain in chain order: the prelude, the rules of each decision-table row
 * (longest prefix first, so the first rule that matches is the longest prefix), then the
 * default MASQUERADE. A translating row gets its --to-ports spread (per protocol, each range but
 * the last with its probability), then its catch-all, per masqueradeSourceCIDRs entry, so a
 * source outside them falls off the chain's end untouched; exempt rows need no source match.
 * A plain policy (today's keys only) keeps the reference's exact text: the comment first, and
 * the protocol and statistic after the target; the rest writes the order -S prints.
 */
export function chainRules(policy: FamilyPolicy, opts: RenderOptions): Rule[] {
  const { chain } = opts;
  const reference = !usesDecisionRules(policy);
  // The decision layout writes IPv6 ranges as iptables prints them; a row itself is the match otherwise.
  const address = (r: AddressMatch): AddressMatch => (reference || r.cidr.family === 'ipv4' ? r : { cidr: r.cidr, text: formatSavedCidr(r.cidr) });
  const fully: RulePart | undefined = opts.randomFully ? { kind: 'random-fully' } : undefined;
  const probabilities = toPortsProbabilities(policy.toPorts);
  const translateShapes = (note: string, target: string, toSource?: IpAddress): RuleShape[] => {
    const [c, j] = [comment(note), jump(target)];
    const to = (ports?: PortRange): RulePart | undefined => {
      if (toSource === undefined) return ports && { kind: 'option', text: `--to-ports ${ports.text}` };
      const addr = savedAddress(toSource);
      if (ports === undefined) return { kind: 'option', text: `--to-source ${addr}` };
      return { kind: 'option', text: `--to-source ${toSource.family === 'ipv6' ? `[${addr}]` : addr}:${ports.text}` };
    };
    const spread = TO_PORTS_PROTOCOLS.flatMap((name) =>
      policy.toPorts.map((ports, i) => {
        const [proto, p] = [{ kind: 'protocol', name } as const, probabilities[i]];
        const stat: RulePart | undefined = p === undefined ? undefined : { kind: 'statistic', probability: p };
        return ruleShape(chain, reference ? [c, j, fully, proto, stat, to(ports)] : [proto, c, stat, j, to(ports), fully]);
      }),
    );
    return [...spread, ruleShape(chain, reference ? [c, j, fully] : [c, j, to(), fully])];
  };
  const sources = policy.sources === undefined ? [undefined] : policy.sources.map(address);
  const rules = preludeRules(policy, chain);
  const translate = (shapes: readonly RuleShape[], decides: CountedDecision, dst?: AddressMatch): void => {
    for (const src of sources) for (const shape of shapes) rules.push({ shape, src, dst, decides });
  };
  // The reference writes -d after the comment. RETURN goes on through POSTROUTING (a later
  // MASQUERADE rule may still translate); ACCEPT ends the nat POSTROUTING traversal (`first`).
  const keep = ruleShape(chain, [comment(NON_MASQ_COMMENT), jump(exemptionIsFinal(policy) ? 'ACCEPT' : 'RETURN')], reference ? 1 : 0);
  let masquerade: RuleShape[] | undefined;
  for (const row of decisionTable(policy)) {
    const [dst, decides] = [address(row), { action: row.action.kind, list: row.list, cidr: row.text }];
    if (row.action.kind === 'keep') rules.push({ shape: keep, dst, decides });
    else if (row.action.kind === 'masquerade') translate((masquerade ??= translateShapes(MASQ_CIDR_COMMENT, 'MASQUERADE')), decides, dst);
    else translate(translateShapes(SNAT_COMMENT, 'SNAT', row.action.toSource), decides, dst);
  }
  translate(translateShapes(MASQ_COMMENT, 'MASQUERADE'), { action: 'masquerade', list: 'default' });
  return rules;
}

/**
 * The exact `iptables-restore --noflush` payload the reference writes for one family: the
 * `:CHAIN - [0:0]` line creates or flushes only our chain, atomically with the new rules.
 */
export function renderRestorePayload(policy: FamilyPolicy, opts: RenderOptions): string {
  return natPayload(chainRestoreLines(policy, opts));
}

/** Our chain's restore lines (`:CHAIN` and its rules), for a payload that also repairs POSTROUTING. */
export function chainRestoreLines(policy: FamilyPolicy, opts: RenderOptions): string[] {
  return [`:${opts.chain} - [0:0]`, ...chainRules(policy, opts).map(formatRestoreRule)];
}

/** Our chain as `iptables -t nat -S CHAIN` prints it once the payload is applied. */
export function renderChainSaveLines(policy: FamilyPolicy, opts: RenderOptions): string[] {
  return [`-N ${opts.chain}`, ...chainRules(policy, opts).map(formatSaveRule)];
}

/** The POSTROUTING jump to our chain, for non-local destinations. */
function jumpRule(chain: string): Rule {
  return { shape: ruleShape('POSTROUTING', [comment(jumpComment(chain)), { kind: 'module', text: '-m addrtype ! --dst-type LOCAL' }, jump(chain)]) };
}

/**
 * The POSTROUTING jump as argv after `-t nat -C|-A|-D POSTROUTING`: the restore line's arguments
 * as iptables-restore splits them, so the comment is one element, unquoted.
 */
export function jumpRuleSpec(chain: string): string[] {
  return splitRuleArgs(formatRestoreRule(jumpRule(chain))).slice(2);
}

/** The POSTROUTING jump as `iptables -t nat -S POSTROUTING` prints it. */
export function renderJumpSaveLine(chain: string): string {
  return formatSaveRule(jumpRule(chain));
}

/** What read() lists once the payload and the jump are in place: the POSTROUTING jump line, then the chain's `-S` lines. */
export function renderSaveLines(policy: FamilyPolicy, opts: RenderOptions): string[] {
  return [renderJumpSaveLine(opts.chain), ...renderChainSaveLines(policy, opts)];
}
