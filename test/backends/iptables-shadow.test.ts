import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chainsToFollow, findShadowingRules } from '../../src/backends/iptables/shadow.js';

const JUMP =
  '-A POSTROUTING -m comment --comment "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain" -m addrtype ! --dst-type LOCAL -j IP-MASQ-AGENT';

test('MASQUERADE and SNAT rules before our jump shadow it; rules after it and other targets do not', () => {
  const cni = '-A POSTROUTING -s 10.244.0.0/16 ! -o cni0 -j MASQUERADE';
  const snat = '-A POSTROUTING -s 10.244.1.0/24 -j SNAT --to-source 203.0.113.1';
  const lines = ['-P POSTROUTING ACCEPT', '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING', cni, snat, JUMP, '-A POSTROUTING -j MASQUERADE'];
  assert.deepEqual(findShadowingRules(lines, 'IP-MASQ-AGENT'), [cni, snat]);
});

test('nothing before the jump: no shadowing; a jump to a longer-named chain is not ours', () => {
  assert.deepEqual(findShadowingRules(['-P POSTROUTING ACCEPT', JUMP, '-A POSTROUTING -j MASQUERADE'], 'IP-MASQ-AGENT'), []);
  assert.deepEqual(findShadowingRules(['-A POSTROUTING -j IP-MASQ-AGENT-X', '-A POSTROUTING -j MASQUERADE'], 'IP-MASQ-AGENT'), ['-A POSTROUTING -j MASQUERADE']);
});

const CALI_JUMP = '-A POSTROUTING -m comment --comment "cali:O3lYWMrLQYEMJtB5" -j cali-POSTROUTING';
const KUBE_JUMP = '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING';
const CALI_MASQ = '-A cali-nat-outgoing -m comment --comment "cali:flqWnvo8yq4ULQLa" -m set --match-set cali40masq-ipam-pools src -j MASQUERADE --random-fully';

test('chainsToFollow: the chains rules before our jump lead to, once each; not kube-proxy, not ours, not ours renamed, not targets', () => {
  const renamed = JUMP.replace(/-j IP-MASQ-AGENT$/, '-j OLD-MASQ');
  const lines = ['-P POSTROUTING ACCEPT', CALI_JUMP, CALI_JUMP, KUBE_JUMP, renamed, '-A POSTROUTING -j RETURN', JUMP, '-A POSTROUTING -j AFTER-OURS'];
  assert.deepEqual(chainsToFollow(lines, 'POSTROUTING', 'IP-MASQ-AGENT'), ['cali-POSTROUTING']);
  // Below POSTROUTING every rule counts: our jump is not there.
  assert.deepEqual(chainsToFollow(['-N cali-POSTROUTING', '-A cali-POSTROUTING -j cali-fip-snat', '-A cali-POSTROUTING -j cali-nat-outgoing'], 'cali-POSTROUTING', 'IP-MASQ-AGENT'), [
    'cali-fip-snat',
    'cali-nat-outgoing',
  ]);
});

test('a jump before ours into a chain that masquerades (Calico, two levels down) shadows it; deeper than two levels, or after our jump, does not count', () => {
  const followed = {
    'cali-POSTROUTING': ['-N cali-POSTROUTING', '-A cali-POSTROUTING -j cali-nat-outgoing'],
    'cali-nat-outgoing': ['-N cali-nat-outgoing', CALI_MASQ, '-A cali-nat-outgoing -j deeper'],
    deeper: ['-N deeper', '-A deeper -j MASQUERADE'],
  };
  assert.deepEqual(findShadowingRules(['-P POSTROUTING ACCEPT', CALI_JUMP, JUMP], 'IP-MASQ-AGENT', followed), [CALI_MASQ]);
  assert.deepEqual(findShadowingRules(['-P POSTROUTING ACCEPT', JUMP, CALI_JUMP], 'IP-MASQ-AGENT', followed), []);
  // What read() did not list (kube-proxy's chains, a chain gone meanwhile) holds nothing that counts.
  assert.deepEqual(findShadowingRules(['-P POSTROUTING ACCEPT', KUBE_JUMP, JUMP], 'IP-MASQ-AGENT', { 'KUBE-POSTROUTING': ['-A KUBE-POSTROUTING -j MASQUERADE'] }), []);
});
