import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ADDR, NETNS_PREFIX, createTopology, sourceSeenBy, startPeerServer } from './netns.js';

test('topology routes pod traffic through the node unchanged when no NAT rule exists, and cleans up', async () => {
  const topo = createTopology();
  try {
    const srv = await startPeerServer(topo.outside);
    try {
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.pod4);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside6), ADDR.pod6);
    } finally {
      srv.stop();
    }
  } finally {
    topo.cleanup();
  }
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.ok(!left.includes(topo.pod) && !left.includes(topo.node) && !left.includes(topo.outside), left);
  assert.ok(!left.split('\n').some((l) => l.startsWith(NETNS_PREFIX) && l.includes(`-${process.pid}-`)), left);
});
