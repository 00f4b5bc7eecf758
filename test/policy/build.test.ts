import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPolicy, explainDestination } from '../../src/policy/build.js';
import { parseCidr, formatCidr, parseIp } from '../../src/net/cidr.js';
import type { MasqConfig } from '../../src/config/config.js';

function config(cidrs: string[], extra: Partial<MasqConfig> = {}): MasqConfig {
  return {
    nonMasqueradeCIDRs: cidrs.map((t, i) => {
      const cidr = parseCidr(t);
      return { cidr, text: formatCidr(cidr), source: 'test.yaml', path: `nonMasqueradeCIDRs[${i}]` };
    }),
    cidrLimit: 64,
    masqLinkLocal: false,
    masqLinkLocalIPv6: false,
    resyncIntervalMs: 60_000,
    resyncInterval: '1m0s',
    ...extra,
  };
}
const opts = { enableIPv6: true, randomFully: true, toPorts: [] };

test('link-local comes first, then the config CIDRs of each family in config order', () => {
  const p = buildPolicy(config(['192.168.0.0/16', '2001:db8::/32', '10.0.0.0/8']), opts);
  assert.deepEqual(
    p.families.map((f) => [f.family, f.exempt.map((e) => e.text)]),
    [
      ['ipv4', ['169.254.0.0/16', '192.168.0.0/16', '10.0.0.0/8']],
      ['ipv6', ['fe80::/10', '2001:db8::/32']],
    ],
  );
  assert.equal(p.families[0]?.exempt[0]?.reason, 'link-local');
  assert.equal(p.families[0]?.exempt[1]?.path, 'nonMasqueradeCIDRs[0]');
});

test('masqLinkLocal and masqLinkLocalIPv6 drop the link-local exemption of their family only', () => {
  const v4 = buildPolicy(config(['10.0.0.0/8'], { masqLinkLocal: true }), opts);
  assert.deepEqual(
    v4.families.map((f) => f.exempt[0]?.text),
    ['10.0.0.0/8', 'fe80::/10'],
  );
  const v6 = buildPolicy(config([], { masqLinkLocalIPv6: true }), opts);
  assert.deepEqual(
    v6.families.map((f) => f.exempt.map((e) => e.text)),
    [['169.254.0.0/16'], []],
  );
});

test('IPv6 rules exist only with --enable-ipv6', () => {
  assert.deepEqual(
    buildPolicy(config([]), { ...opts, enableIPv6: false }).families.map((f) => f.family),
    ['ipv4'],
  );
});

test('explain follows the rules: local, first exempt match, masquerade, family disabled', () => {
  const p = buildPolicy(config(['10.0.0.0/8', '10.1.0.0/16']), { ...opts, enableIPv6: false });
  const e1 = explainDestination(p, parseIp('10.1.2.3'));
  assert.equal(e1.masquerade, false);
  assert.equal(e1.reason === 'exempt' && e1.match.text, '10.0.0.0/8');
  assert.equal(explainDestination(p, parseIp('169.254.169.254')).reason, 'exempt');
  assert.equal(explainDestination(p, parseIp('203.0.113.7')).masquerade, true);
  assert.equal(explainDestination(p, parseIp('203.0.113.7'), () => true).reason, 'local');
  assert.equal(explainDestination(p, parseIp('2001:db8::1')).reason, 'family-disabled');
});
