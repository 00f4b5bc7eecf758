// The law behind `explain`: its verdict for any destination agrees with what the rendered rules
// do to a packet. The rules are evaluated independently: from their text (the iptables-restore
// payload, the `iptables -S` read-back, the nft expected state and what the fake nft lists back
// after loading the script: keep set, source scope, SNAT map), with node:net's BlockList as the
// address matcher, so no code path is shared with explainDestination's containment check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import fc from 'fast-check';
import { renderChainSaveLines, renderRestorePayload } from '../../src/backends/iptables/render.js';
import { expectedNftLines, renderNftScript } from '../../src/backends/nftables/render.js';
import { ownedNftLines, parseNftTable } from '../../src/backends/nftables/parse.js';
import { createFakeNft } from '../backends/fake-nft.js';
import type { CidrEntry, MasqConfig, SnatCidrEntry } from '../../src/config/config.js';
import { formatCidr, formatIp, parseIp, type Cidr, type Family, type IpAddress } from '../../src/net/cidr.js';
import { buildPolicy, explainDestination } from '../../src/policy/build.js';
import type { Policy, PortRange } from '../../src/policy/types.js';

type Proto = 'tcp' | 'udp' | 'sctp' | 'icmp';

/** What the rules do to one packet: left alone, or masqueraded with these flags and port ranges. */
interface Outcome {
  readonly masquerade: boolean;
  /** The fixed address of a SNAT rule; undefined for MASQUERADE and for no translation. */
  readonly toSource?: string;
  /** Port ranges the packet may get (several when `statistic` rules spread it); empty = any. */
  readonly ports: readonly string[];
  readonly randomFully: boolean;
}

const KEEP: Outcome = { masquerade: false, ports: [], randomFully: false };

function inCidr(text: string, family: Family, ip: string): boolean {
  const [addr, len] = text.split('/');
  const list = new BlockList();
  list.addSubnet(addr!, Number(len), family);
  return list.check(ip, family);
}

/**
 * Walks iptables rules (restore or -S form) for a packet, first match wins. A rule without `-d`
 * matches every destination (iptables prints /0 that way). A `statistic` rule may or may not
 * match, so its ports join the possible outcomes and the walk goes on.
 */
function evalIptables(lines: readonly string[], chain: string, family: Family, ip: string, proto: Proto, src?: string): Outcome {
  const ports: string[] = [];
  let snatTo: string | undefined;
  for (const line of lines) {
    if (!line.startsWith(`-A ${chain} `)) continue;
    const dst = /(?:^| )-d (\S+)/.exec(line)?.[1];
    const from = /(?:^| )-s (\S+)/.exec(line)?.[1];
    if (dst !== undefined && !inCidr(dst, family, ip)) continue;
    if (from !== undefined && (src === undefined || !inCidr(from, family, src))) continue;
    if (/ -j RETURN$/.test(line)) return KEEP;
    const masq = / -j MASQUERADE/.test(line);
    const snat = / -j SNAT --to-source (\S+)/.exec(line)?.[1];
    assert.ok(masq || snat !== undefined, `unknown rule ${line}`);
    const p = /(?:^| )-p (\S+)/.exec(line)?.[1];
    if (p !== undefined && p !== proto) continue;
    let to = /--to-ports (\S+)/.exec(line)?.[1];
    if (snat !== undefined) {
      // ADDR, ADDR:PORTS or [ADDR6]:PORTS
      const m = /^(?:\[([^\]]+)\]|([^:[]+))(?::(\d+(?:-\d+)?))?$/.exec(snat) ?? /^([0-9a-f:]+)$/.exec(snat);
      assert.ok(m, `unreadable --to-source ${snat}`);
      const addr = m[1] ?? m[2]!;
      if (m[3] !== undefined) to = m[3];
      snatTo = addr;
    }
    const randomFully = / --random-fully(?: |$)/.test(line);
    if (to !== undefined) ports.push(to);
    if (/--mode random --probability/.test(line)) continue;
    return { masquerade: true, ports, randomFully, ...(snat === undefined ? {} : { toSource: snatTo! }) };
  }
  return KEEP;
}

/** Whether `ip` lies in an nft element: `a/len`, or a range `a-b`. */
function inNftElement(element: string, family: Family, ip: string): boolean {
  if (element.includes('/')) return inCidr(element, family, ip);
  const [first, last] = element.split('-');
  const list = new BlockList();
  list.addRange(first!, last!, family);
  return list.check(ip, family);
}

/** The elements of an anonymous set `{ a, b }`, or the pairs of a map `{ k : v, ... }`. */
function anonymousItems(body: string): string[] {
  const m = /^\{ (.*) \}$/.exec(body);
  assert.ok(m, `not an anonymous set: ${body}`);
  return m[1]!.split(', ');
}

/**
 * Walks the nft expected state (canonical lines) for a packet of `family`: the keep set, the source
 * scope, the SNAT map (a destination not in the map does not match the rule), the masquerade rules.
 */
function evalNft(lines: readonly string[], family: Family, ip: string, proto: Proto, local: boolean, src: string): Outcome {
  const elements = lines.filter((l) => l.startsWith('element ')).map((l) => l.split(' ')[2]!);
  const ports: string[] = [];
  for (const line of lines.filter((l) => l.startsWith('rule '))) {
    const body = line.split(' ').slice(2).join(' ');
    if (body === `meta nfproto != ${family} return`) continue; // this packet is of the family
    if (body === 'fib daddr type local return') {
      if (local) return KEEP;
      continue;
    }
    if (/^ip6? daddr @nonmasq[46] return$/.test(body)) {
      if (elements.some((e) => inNftElement(e, family, ip))) return KEEP;
      continue;
    }
    // A one-element set is written (and listed) as the element itself.
    const scope = /^ip6? saddr != (\{ .* \}|\S+) return$/.exec(body);
    if (scope) {
      const items = scope[1]!.startsWith('{') ? anonymousItems(scope[1]!) : [scope[1]!];
      if (!items.some((e) => inNftElement(e, family, src))) return KEEP;
      continue;
    }
    const snat = /^(?:meta l4proto (\w+) )?(numgen random mod \d+ < \d+ )?(?:counter )?snat ip6? to ip6? daddr map (\{ .* \})(?::(\d+(?:-\d+)?))?( fully-random)?$/.exec(body);
    if (snat) {
      if (snat[1] !== undefined && snat[1] !== proto) continue;
      const hit = anonymousItems(snat[3]!)
        .map((pair) => pair.split(' : '))
        .find(([k]) => inNftElement(k!, family, ip));
      if (hit === undefined) continue;
      if (snat[4] !== undefined) ports.push(snat[4]);
      if (snat[2] !== undefined) continue;
      return { masquerade: true, ports, randomFully: snat[5] !== undefined, toSource: hit[1]! };
    }
    const m = /^(?:meta l4proto (\w+) )?(numgen random mod \d+ < \d+ )?(?:counter )?masquerade(?: to :(\S+))?( fully-random)?$/.exec(body);
    assert.ok(m, `unknown nft rule ${body}`);
    if (m[1] !== undefined && m[1] !== proto) continue;
    if (m[3] !== undefined) ports.push(m[3]);
    if (m[2] !== undefined) continue;
    return { masquerade: true, ports, randomFully: m[4] !== undefined };
  }
  return KEEP;
}

const BITS: Record<Family, number> = { ipv4: 32, ipv6: 128 };

const SNAT_ADDRESSES: Record<Family, readonly string[]> = { ipv4: ['198.51.100.9', '192.0.2.1'], ipv6: ['2001:db8::9', '2001:db8:0:1::1'] };

const familyArb = fc.constantFrom<Family>('ipv4', 'ipv6');

function cidrArb(family: Family): fc.Arbitrary<Cidr> {
  const bits = BITS[family];
  // Short prefixes are rare in configs but make containment and /0 interesting.
  return (
    fc
      .tuple(fc.bigInt({ min: 0n, max: (1n << BigInt(bits)) - 1n }), fc.oneof(fc.integer({ min: 0, max: bits }), fc.integer({ min: bits - 16, max: bits })))
      .map(([value, prefix]) => {
        const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
        return { family, base: value & mask, prefix };
      })
      // The config parser refuses IPv4-mapped IPv6 blocks; they never reach the rules.
      .filter((c) => !(c.family === 'ipv6' && c.prefix >= 96 && c.base >> 32n === 0xffffn))
  );
}

const portRangeArb: fc.Arbitrary<PortRange> = fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 3000 })).map(([from, span]) => {
  const to = Math.min(65535, from + span);
  return { from, to, text: from === to ? `${from}` : `${from}-${to}` };
});

interface Scenario {
  readonly config: MasqConfig;
  readonly enableIPv6: boolean;
  readonly randomFully: boolean;
  readonly toPorts: readonly PortRange[];
  readonly chain: string;
  readonly probes: readonly { ip: IpAddress; src: IpAddress; proto: Proto; local: boolean }[];
}

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    cidrs: fc.array(familyArb.chain(cidrArb), { maxLength: 8 }),
    masq: fc.array(familyArb.chain(cidrArb), { maxLength: 4 }),
    snat: fc.array(
      familyArb.chain((f) => fc.tuple(cidrArb(f), fc.constantFrom(...SNAT_ADDRESSES[f]))),
      { maxLength: 3 },
    ),
    sources: fc.array(familyArb.chain(cidrArb), { maxLength: 2 }),
    masqLinkLocal: fc.boolean(),
    masqLinkLocalIPv6: fc.boolean(),
    enableIPv6: fc.boolean(),
    randomFully: fc.boolean(),
    toPorts: fc.array(portRangeArb, { maxLength: 3 }),
    chain: fc.constantFrom('IP-MASQ-AGENT', 'MY-MASQ'),
  })
  .chain((s) => {
    const near = (c: Cidr) =>
      fc.bigInt({ min: -2n, max: (1n << BigInt(BITS[c.family] - c.prefix)) + 1n }).map((off): IpAddress => {
        const max = (1n << BigInt(BITS[c.family])) - 1n;
        const v = c.base + off;
        return { family: c.family, value: v < 0n ? 0n : v > max ? max : v };
      });
    const linkLocal: Cidr[] = [
      { family: 'ipv4', base: 0xa9fe0000n, prefix: 16 },
      { family: 'ipv6', base: 0xfe80n << 112n, prefix: 10 },
    ];
    const anyIp = familyArb.chain((family) => fc.bigInt({ min: 0n, max: (1n << BigInt(BITS[family])) - 1n }).map((value): IpAddress => ({ family, value })));
    const ipArb = fc.oneof(anyIp, ...[...s.cidrs, ...s.masq, ...s.snat.map(([c]) => c), ...s.sources, ...linkLocal].map(near)).filter((ip) => !(ip.family === 'ipv6' && ip.value >> 32n === 0xffffn)); // parseIp refuses IPv4-mapped forms
    const probe = fc.record({ ip: ipArb, src: ipArb, proto: fc.constantFrom<Proto>('tcp', 'udp', 'sctp', 'icmp'), local: fc.integer({ min: 0, max: 4 }).map((n) => n === 0) });
    return fc.array(probe, { minLength: 1, maxLength: 12 }).map((probes): Scenario => {
      const entries: CidrEntry[] = s.cidrs.map((cidr, i) => ({ cidr, text: formatCidr(cidr), source: 'property', path: `nonMasqueradeCIDRs[${i}]` }));
      // merge refuses one prefix with two actions, so a prefix already listed is left out of the later lists.
      const taken = new Set(entries.map((e) => e.text));
      const fresh = (e: { readonly text: string }): boolean => !taken.has(e.text) && (taken.add(e.text), true);
      const masq: CidrEntry[] = s.masq.map((cidr, i) => ({ cidr, text: formatCidr(cidr), source: 'property', path: `masqueradeCIDRs[${i}]` })).filter(fresh);
      const snat: SnatCidrEntry[] = s.snat
        .map(([cidr, addr], i) => {
          const ip = parseIp(addr);
          return { cidr, text: formatCidr(cidr), source: 'property', path: `snat[${i}].cidrs[0]`, toSource: ip, toSourceText: formatIp(ip) };
        })
        .filter(fresh);
      const sources: CidrEntry[] = s.sources.map((cidr, i) => ({ cidr, text: formatCidr(cidr), source: 'property', path: `masqueradeSourceCIDRs[${i}]` }));
      return {
        config: {
          nonMasqueradeCIDRs: entries,
          ...(masq.length > 0 ? { masqueradeCIDRs: masq } : {}),
          ...(snat.length > 0 ? { snat } : {}),
          ...(sources.length > 0 ? { masqueradeSourceCIDRs: sources } : {}),
          cidrLimit: 64,
          masqLinkLocal: s.masqLinkLocal,
          masqLinkLocalIPv6: s.masqLinkLocalIPv6,
          resyncIntervalMs: 60_000,
          resyncInterval: '1m0s',
        },
        enableIPv6: s.enableIPv6,
        randomFully: s.randomFully,
        toPorts: s.toPorts,
        chain: s.chain,
        probes,
      };
    });
  });

/** What explain's verdict promises for a packet of `proto`. */
function promised(policy: Policy, ip: IpAddress, proto: Proto, local: boolean, src: IpAddress): Outcome {
  const v = explainDestination(policy, ip, () => local, src.family === ip.family ? src : undefined);
  if (!v.masquerade) return KEEP;
  const ports = proto === 'icmp' ? [] : v.toPorts.map((r) => r.text);
  const toSource = v.reason === 'snat' && v.match.action.kind === 'snat' ? v.match.action.toSourceText : undefined;
  return { masquerade: true, ports, randomFully: v.randomFully, ...(toSource === undefined ? {} : { toSource }) };
}

/** Brute-force longest prefix over the config lists, written apart from the policy code: is it translated? */
function longestPrefixOracle(c: MasqConfig, ip: IpAddress, src: IpAddress): boolean {
  const linkLocal = ip.family === 'ipv4' ? (c.masqLinkLocal ? [] : ['169.254.0.0/16']) : c.masqLinkLocalIPv6 ? [] : ['fe80::/10'];
  const rows: { text: string; translate: boolean }[] = [
    ...c.nonMasqueradeCIDRs.map((e) => ({ text: e.text, translate: false })),
    ...(c.masqueradeCIDRs ?? []).map((e) => ({ text: e.text, translate: true })),
    ...(c.snat ?? []).map((e) => ({ text: e.text, translate: true })),
  ];
  // The built-in link-local row loses a tie to an explicit masquerade or SNAT entry for the same block.
  for (const t of linkLocal) if (!rows.some((r) => r.text === t && r.translate)) rows.push({ text: t, translate: false });
  let best: { len: number; translate: boolean } | undefined;
  for (const r of rows) {
    const len = Number(r.text.split('/')[1]);
    if (r.text.includes(':') !== (ip.family === 'ipv6') || !inCidr(r.text, ip.family, formatIp(ip))) continue;
    if (best === undefined || len > best.len) best = { len, translate: r.translate };
  }
  const translate = best?.translate ?? true;
  const sources = (c.masqueradeSourceCIDRs ?? []).filter((e) => e.cidr.family === ip.family);
  const inScope = (c.masqueradeSourceCIDRs ?? []).length === 0 || sources.some((e) => inCidr(e.text, ip.family, formatIp(src)));
  return translate && inScope;
}

function check(s: Scenario, ruleOutcome: (policy: Policy, family: Family, ip: string, proto: Proto, local: boolean, src: string) => Outcome): void {
  const policy = buildPolicy(s.config, { enableIPv6: s.enableIPv6, randomFully: s.randomFully, toPorts: s.toPorts });
  for (const { ip, proto, local, src: rawSrc } of s.probes) {
    // A packet's source is of its own family.
    const src = rawSrc.family === ip.family ? rawSrc : ip;
    const want = promised(policy, ip, proto, local, src);
    if (!local && policy.families.some((f) => f.family === ip.family)) assert.equal(want.masquerade, longestPrefixOracle(s.config, ip, src), `oracle: ${formatIp(ip)}`);
    const got = ruleOutcome(policy, ip.family, formatIp(ip), proto, local, formatIp(src));
    assert.deepEqual(got, want, `${formatIp(src)} -> ${formatIp(ip)} ${proto}${local ? ' (local)' : ''}`);
  }
}

test('explain agrees with the iptables-restore payload the agent writes, for every destination and protocol', () => {
  fc.assert(
    fc.property(scenarioArb, (s) =>
      check(s, (policy, family, ip, proto, local, src) => {
        const fp = policy.families.find((f) => f.family === family);
        // No rules for a family the agent does not handle; the jump skips LOCAL destinations.
        if (!fp || local) return KEEP;
        const payload = renderRestorePayload(fp, { chain: s.chain, randomFully: fp.randomFully }).split('\n');
        return evalIptables(payload, s.chain, family, ip, proto, src);
      }),
    ),
    { numRuns: 400 },
  );
});

test('explain agrees with the rules as iptables prints them back (-S), which status compares', () => {
  fc.assert(
    fc.property(scenarioArb, (s) =>
      check(s, (policy, family, ip, proto, local, src) => {
        const fp = policy.families.find((f) => f.family === family);
        if (!fp || local) return KEEP;
        return evalIptables(renderChainSaveLines(fp, { chain: s.chain, randomFully: fp.randomFully }), s.chain, family, ip, proto, src);
      }),
    ),
    { numRuns: 400 },
  );
});

test('explain agrees with the nftables state (flattened keep set, source scope, SNAT map, local check in the chain)', () => {
  fc.assert(
    fc.property(scenarioArb, (s) =>
      check(s, (policy, family, ip, proto, local, src) => {
        const fp = policy.families.find((f) => f.family === family);
        if (!fp) return KEEP;
        return evalNft(expectedNftLines(fp), family, ip, proto, local, src);
      }),
    ),
    { numRuns: 400 },
  );
});

test('explain agrees with what the fake nft lists back after loading the rendered script, parsed as status parses it', async () => {
  await fc.assert(
    fc.asyncProperty(scenarioArb, async (s) => {
      const policy = buildPolicy(s.config, { enableIPv6: s.enableIPv6, randomFully: s.randomFully, toPorts: s.toPorts });
      const fake = createFakeNft();
      await fake.runner(['nft', '-f', '-'], { input: renderNftScript([...policy.families]) });
      const { stdout } = await fake.runner(['nft', '-j', 'list', 'table', 'inet', 'ip-masq-agent']);
      check(s, (p, family, ip, proto, local, src) => {
        if (!p.families.some((f) => f.family === family)) return KEEP;
        return evalNft(ownedNftLines(parseNftTable(stdout), family), family, ip, proto, local, src);
      });
    }),
    { numRuns: 200 },
  );
});

test('the evaluator is not vacuous: both verdicts occur, and a dropped RETURN rule is caught', () => {
  const config: MasqConfig = {
    nonMasqueradeCIDRs: [{ cidr: { family: 'ipv4', base: 0x0a000000n, prefix: 8 }, text: '10.0.0.0/8', source: 't', path: 'nonMasqueradeCIDRs[0]' }],
    cidrLimit: 64,
    masqLinkLocal: false,
    masqLinkLocalIPv6: false,
    resyncIntervalMs: 60_000,
    resyncInterval: '1m0s',
  };
  const fp = buildPolicy(config, { enableIPv6: false, randomFully: true, toPorts: [] }).families[0]!;
  const payload = renderRestorePayload(fp, { chain: 'C', randomFully: true }).split('\n');
  assert.equal(evalIptables(payload, 'C', 'ipv4', '10.1.2.3', 'tcp').masquerade, false);
  assert.deepEqual(evalIptables(payload, 'C', 'ipv4', '203.0.113.7', 'tcp'), { masquerade: true, ports: [], randomFully: true });
  const broken = payload.filter((l) => !l.includes('10.0.0.0/8'));
  assert.equal(evalIptables(broken, 'C', 'ipv4', '10.1.2.3', 'tcp').masquerade, true);
});

test('the nft evaluator is not vacuous: keep interval, SNAT map hit, masquerade exception and source scope all show, and a dropped rule is caught', () => {
  const entry = (text: string, base: bigint, prefix: number, path: string): CidrEntry => ({ cidr: { family: 'ipv4', base, prefix }, text, source: 't', path });
  const ip = parseIp('192.0.2.50');
  const config: MasqConfig = {
    nonMasqueradeCIDRs: [entry('10.0.0.0/8', 0x0a000000n, 8, 'nonMasqueradeCIDRs[0]')],
    masqueradeCIDRs: [entry('10.9.0.0/16', 0x0a090000n, 16, 'masqueradeCIDRs[0]')],
    snat: [{ ...entry('198.51.100.0/24', 0xc6336400n, 24, 'snat[0].cidrs[0]'), toSource: ip, toSourceText: '192.0.2.50' }],
    masqueradeSourceCIDRs: [entry('10.244.0.0/16', 0x0af40000n, 16, 'masqueradeSourceCIDRs[0]')],
    cidrLimit: 64,
    masqLinkLocal: false,
    masqLinkLocalIPv6: false,
    resyncIntervalMs: 60_000,
    resyncInterval: '1m0s',
  };
  const lines = expectedNftLines(buildPolicy(config, { enableIPv6: false, randomFully: false, toPorts: [] }).families[0]!);
  const pod = '10.244.1.2';
  assert.deepEqual(evalNft(lines, 'ipv4', '10.1.2.3', 'tcp', false, pod), KEEP);
  assert.deepEqual(evalNft(lines, 'ipv4', '10.9.2.3', 'tcp', false, pod), { masquerade: true, ports: [], randomFully: false });
  assert.deepEqual(evalNft(lines, 'ipv4', '198.51.100.7', 'tcp', false, pod), { masquerade: true, ports: [], randomFully: false, toSource: '192.0.2.50' });
  assert.deepEqual(evalNft(lines, 'ipv4', '198.51.100.7', 'tcp', false, '192.0.2.9'), KEEP, 'a source outside the scope');
  const noSnat = lines.filter((l) => !l.includes(' snat '));
  assert.equal(evalNft(noSnat, 'ipv4', '198.51.100.7', 'tcp', false, pod).toSource, undefined);
});
