import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findShadowingRules } from '../../src/backends/iptables/shadow.js';

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
