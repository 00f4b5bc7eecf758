// changedDecisions: table tests of what a config change re-decides, and a property against the one
// longest-prefix resolution (plus the source scope) as oracle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cidrContains, formatCidr, parseCidr, parseIp, type Cidr, type Family, type IpAddress } from '../../src/net/cidr.js';
import { maxAddress } from '../../src/net/intervals.js';
import { changedDecisions, countBlockPairs, type ChangedDecisions } from '../../src/policy/changes.js';
import { DEFAULT_ACTION, decisionTable, resolveDestination, sameAction, sourceInScope } from '../../src/policy/decide.js';
import type { Action, ActionRange, ExemptRange, FamilyPolicy, PortRange } from '../../src/policy/types.js';

/** A policy from short rows: `10.0.0.0/8 keep`, `203.0.113.0/24 masquerade`, `0.0.0.0/0 snat 192.0.2.1`. */
function policy(rows: readonly string[], more: { sources?: readonly string[]; toPorts?: readonly PortRange[] } = {}): FamilyPolicy {
  const exempt: ExemptRange[] = [];
  const actions: ActionRange[] = [];
  let family: Family = 'ipv4';
  rows.forEach((row, i) => {
    const [text = '', kind, to] = row.split(' ');
    const cidr = parseCidr(text);
    family = cidr.family;
    const where = { cidr, text: formatCidr(cidr), source: 't', path: `[${i}]` };
    if (kind === 'keep') exempt.push({ ...where, reason: 'config' });
    else if (kind === 'masquerade') actions.push({ ...where, action: { kind: 'masquerade' }, list: 'masqueradeCIDRs' });
    else actions.push({ ...where, action: { kind: 'snat', toSource: parseIp(to ?? ''), toSourceText: to ?? '' }, list: 'snat' });
  });
  const sources = more.sources?.map((t) => ({ cidr: parseCidr(t), text: t, source: 't', path: '' }));
  return { family, exempt, actions, randomFully: false, toPorts: more.toPorts ?? [], ...(sources ? { sources } : {}) };
}

/** Each change as `[from SOURCES] to DESTINATIONS: was translated|kept`. */
function show(c: ChangedDecisions): string[] {
  return c.changes.map((ch) => `${ch.sources ? `from ${ch.sources.map(formatCidr).join(',')} ` : ''}to ${ch.destinations.map(formatCidr).join(',')}: was ${ch.oldTranslated ? 'translated' : 'kept'}`);
}

const PORTS: readonly PortRange[] = [{ from: 1024, to: 29999, text: '1024-29999' }];

const CASES: readonly (readonly [name: string, old: FamilyPolicy, next: FamilyPolicy, want: string[]])[] = [
  ['nothing changed', policy(['10.0.0.0/8 keep']), policy(['10.0.0.0/8 keep']), []],
  ['an exemption removed: its flows were kept', policy(['10.0.0.0/8 keep', '198.51.100.0/24 keep']), policy(['10.0.0.0/8 keep']), ['to 198.51.100.0/24: was kept']],
  ['an exemption added: its flows were translated', policy([]), policy(['198.51.100.0/24 keep']), ['to 198.51.100.0/24: was translated']],
  ['adjacent ranges merge into one block', policy(['198.51.100.0/25 keep', '198.51.100.128/25 keep']), policy([]), ['to 198.51.100.0/24: was kept']],
  ['a range not on a block boundary becomes blocks', policy(['198.51.100.0/24 keep', '198.51.101.0/24 keep', '198.51.102.0/24 keep']), policy([]), ['to 198.51.100.0/23,198.51.102.0/24: was kept']],
  ['the same exemption written narrower: only the difference', policy(['10.0.0.0/8 keep']), policy(['10.0.0.0/9 keep']), ['to 10.128.0.0/9: was kept']],
  ['another SNAT address', policy(['0.0.0.0/0 snat 192.0.2.1']), policy(['0.0.0.0/0 snat 192.0.2.9']), ['to 0.0.0.0/0: was translated']],
  ['masquerade to SNAT', policy([]), policy(['203.0.113.0/24 snat 192.0.2.1']), ['to 203.0.113.0/24: was translated']],
  ['a masquerade entry that repeats the default changes nothing', policy([]), policy(['203.0.113.0/24 masquerade']), []],
  ['a hole punched in an exemption', policy(['10.0.0.0/8 keep']), policy(['10.0.0.0/8 keep', '10.9.0.0/16 masquerade']), ['to 10.9.0.0/16: was kept']],
  ['both directions at once', policy(['10.0.0.0/8 keep']), policy(['172.16.0.0/12 keep']), ['to 172.16.0.0/12: was translated', 'to 10.0.0.0/8: was kept']],
  [
    '--to-ports changed: every translated destination',
    policy(['10.0.0.0/8 keep']),
    policy(['10.0.0.0/8 keep'], { toPorts: PORTS }),
    ['to 0.0.0.0/5,8.0.0.0/7,11.0.0.0/8,12.0.0.0/6,16.0.0.0/4,32.0.0.0/3,64.0.0.0/2,128.0.0.0/1: was translated'],
  ],
  ['--random-fully changed: nothing', policy([]), { ...policy([]), randomFully: true }, []],
  [
    'a source scope added: sources left out were translated',
    policy([]),
    policy([], { sources: ['10.244.0.0/16'] }),
    [
      'from 0.0.0.0/5,8.0.0.0/7,10.0.0.0/9,10.128.0.0/10,10.192.0.0/11,10.224.0.0/12,10.240.0.0/14,10.245.0.0/16,10.246.0.0/15,10.248.0.0/13,11.0.0.0/8,12.0.0.0/6,16.0.0.0/4,32.0.0.0/3,64.0.0.0/2,128.0.0.0/1 to 0.0.0.0/0: was translated',
    ],
  ],
  [
    'a source scope widened, exemptions stay kept',
    policy(['10.0.0.0/8 keep'], { sources: ['10.244.0.0/24'] }),
    policy(['10.0.0.0/8 keep'], { sources: ['10.244.0.0/23'] }),
    ['from 10.244.1.0/24 to 0.0.0.0/5,8.0.0.0/7,11.0.0.0/8,12.0.0.0/6,16.0.0.0/4,32.0.0.0/3,64.0.0.0/2,128.0.0.0/1: was kept'],
  ],
  [
    'a source scope and a destination change together',
    policy([], { sources: ['10.244.0.0/24'] }),
    policy(['198.51.100.0/24 keep'], { sources: ['10.244.0.0/24'] }),
    ['from 10.244.0.0/24 to 198.51.100.0/24: was translated'],
  ],
  ['IPv6', policy(['2001:db8::/32 keep']), { ...policy([]), family: 'ipv6' }, ['to 2001:db8::/32: was kept']],
];

for (const [name, old, next, want] of CASES) {
  test(`changedDecisions: ${name}`, () => {
    const got = changedDecisions(old, next, 1000);
    assert.deepEqual(show(got), want);
    assert.equal(got.widened, false);
  });
}

test('changedDecisions: beyond the limit, sources are dropped first, then destinations become one covering block', () => {
  const old = policy(['198.51.100.0/24 keep', '203.0.113.0/24 keep'], { sources: ['10.244.0.0/24', '10.245.0.0/24'] });
  const next = policy([], { sources: ['10.244.0.0/24', '10.245.0.0/24'] });
  assert.deepEqual(show(changedDecisions(old, next, 4)), ['from 10.244.0.0/24,10.245.0.0/24 to 198.51.100.0/24,203.0.113.0/24: was kept']);
  const dropped = changedDecisions(old, next, 3);
  assert.deepEqual(show(dropped), ['to 198.51.100.0/24,203.0.113.0/24: was kept']);
  assert.equal(dropped.widened, true);
  assert.deepEqual(show(changedDecisions(old, next, 1)), ['to 192.0.0.0/4: was kept']);
});

// ---- property: exactly the (source, destination) pairs whose translation differs are covered ----

const BITS: Record<Family, number> = { ipv4: 32, ipv6: 128 };
const SNAT: Record<Family, readonly string[]> = { ipv4: ['192.0.2.1', '198.51.100.9'], ipv6: ['2001:db8::1', '2001:db8::9'] };

function cidrArb(family: Family): fc.Arbitrary<Cidr> {
  const bits = BITS[family];
  // Few distinct high bits, so ranges of the two policies nest and touch often.
  return fc.tuple(fc.bigInt({ min: 0n, max: 15n }), fc.integer({ min: 0, max: bits }), fc.bigInt({ min: 0n, max: maxAddress(family) })).map(([top, prefix, low]) => {
    const value = (top << BigInt(bits - 4)) | (low & ((1n << BigInt(bits - 4)) - 1n));
    const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
    return { family, base: value & mask, prefix };
  });
}

function policyArb(family: Family): fc.Arbitrary<FamilyPolicy> {
  const row = fc.tuple(cidrArb(family), fc.constantFrom('keep', 'masquerade', 'snat 0', 'snat 1'));
  const sources = fc.option(fc.array(cidrArb(family), { maxLength: 3 }), { nil: undefined });
  return fc.tuple(fc.array(row, { maxLength: 8 }), sources, fc.boolean()).map(([rows, src, ports]) => {
    const seen = new Set<string>();
    const texts: string[] = [];
    for (const [cidr, kind] of rows) {
      const text = formatCidr(cidr);
      // merge refuses the same prefix with two actions; the table never holds that.
      if (seen.has(text)) continue;
      seen.add(text);
      texts.push(kind.startsWith('snat') ? `${text} snat ${SNAT[family][Number(kind.slice(5))]}` : `${text} ${kind}`);
    }
    const fp = policy(texts, { ...(src ? { sources: src.map(formatCidr) } : {}), toPorts: ports ? PORTS : [] });
    return { ...fp, family };
  });
}

/** What a new connection from `src` to `dst` gets: keep, or the action with the ports. */
function translation(fp: FamilyPolicy, src: IpAddress, dst: IpAddress): { action: Action; ports: string } {
  if (!sourceInScope(fp, src)) return { action: { kind: 'keep' }, ports: '' };
  const action = resolveDestination(decisionTable(fp), dst)?.action ?? DEFAULT_ACTION;
  return { action, ports: action.kind === 'keep' ? '' : fp.toPorts.map((r) => r.text).join(',') };
}

function addressArb(family: Family, fps: readonly FamilyPolicy[]): fc.Arbitrary<bigint> {
  const edges = fps.flatMap((fp) => [...fp.exempt, ...(fp.actions ?? []), ...(fp.sources ?? [])].map((r) => r.cidr));
  const near = edges.map((c) => fc.bigInt({ min: -1n, max: 1n << BigInt(BITS[family] - c.prefix) }).map((off) => c.base + off));
  return fc.oneof(fc.bigInt({ min: 0n, max: maxAddress(family) }), ...near).map((v) => (v < 0n ? 0n : v > maxAddress(family) ? maxAddress(family) : v));
}

test('changedDecisions covers every changed (source, destination) and, unless widened, nothing else', () => {
  fc.assert(
    fc.property(
      fc.constantFrom<Family>('ipv4', 'ipv6').chain((family) =>
        fc.tuple(policyArb(family), policyArb(family), fc.integer({ min: 1, max: 40 })).chain(([old, next, limit]) => {
          const addr = addressArb(family, [old, next]);
          return fc.tuple(fc.constant(old), fc.constant(next), fc.constant(limit), fc.array(fc.tuple(addr, addr), { minLength: 1, maxLength: 24 }));
        }),
      ),
      ([old, next, limit, probes]) => {
        const got = changedDecisions(old, next, limit);
        assert.ok(countBlockPairs(got.changes) <= Math.max(limit, 2), 'bounded');
        for (const [s, d] of probes) {
          const src = { family: old.family, value: s };
          const dst = { family: old.family, value: d };
          const [a, b] = [translation(old, src, dst), translation(next, src, dst)];
          const changed = !sameAction(a.action, b.action) || a.ports !== b.ports;
          const covering = got.changes.filter((c) => (c.sources ?? [undefined]).some((sc) => sc === undefined || cidrContains(sc, src)) && c.destinations.some((dc) => cidrContains(dc, dst)));
          if (changed) {
            assert.ok(
              covering.some((c) => c.oldTranslated === (a.action.kind !== 'keep')),
              `${s} -> ${d} changed but not covered`,
            );
          } else if (!got.widened) {
            assert.equal(covering.length, 0, `${s} -> ${d} unchanged but covered`);
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});
