// The built agent with configs at and past the size limits (src/limits.ts): a file over the byte
// cap is rejected with its size and the limit while the last good rules stay, and a ConfigMap's
// worth of duplicate CIDRs logs a bounded number of bytes however many resyncs pass. Each test
// builds its own namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canUseNetns } from '../netns/netns.js';
import type { LogLine } from './agent-process.js';
import { expectedSaveLines, ourSaveLines, usePrivateXtablesLock, withScene } from './agent-scene.js';
import { MAX_CONFIG_BYTES } from '../../src/limits.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const GOOD = 'nonMasqueradeCIDRs:\n  - 10.244.0.0/16\n  - 198.51.100.0/24\nresyncInterval: 1h\n';
const errorsOf = (l: LogLine): string => (Array.isArray(l.fields['errors']) ? l.fields['errors'].join('\n') : '');
const stdoutBytes = (lines: readonly LogLine[]): number => lines.reduce((n, l) => n + Buffer.byteLength(l.raw) + 1, 0);

test('a config file over the byte cap is rejected with its size and the limit; the last good rules stay and the agent keeps running', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(GOOD);
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2']);
    await agent.waitForLog('rules applied');
    const good = expectedSaveLines('ipv4', ['10.244.0.0/16', '198.51.100.0/24']);
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), good);

    // Valid YAML in every byte: only the size is wrong. A comment pads it one byte past the cap.
    const head = 'nonMasqueradeCIDRs: [192.0.2.0/24]\nresyncInterval: 1h\n#';
    const big = `${head}${'x'.repeat(MAX_CONFIG_BYTES + 1 - head.length - 1)}\n`;
    assert.equal(Buffer.byteLength(big), MAX_CONFIG_BYTES + 1);
    const mark = agent.mark();
    cm.write(big);
    const rejected = await agent.waitForLog('config rejected', { since: mark });
    assert.equal(errorsOf(rejected), `${cm.file}: config file is ${(MAX_CONFIG_BYTES + 1).toLocaleString('en')} bytes; the limit is ${MAX_CONFIG_BYTES.toLocaleString('en')} bytes`);
    assert.ok(rejected.raw.length < 1000, 'the file is not echoed');
    await agent.waitForLog('sync done', { since: agent.logs.indexOf(rejected) });
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), good, 'the last good rules stay');

    // Still alive and still syncing; a file back under the cap is applied.
    const again = agent.mark();
    agent.signal('SIGHUP');
    await agent.waitForLog('sync done', { since: again });
    cm.write('nonMasqueradeCIDRs: [192.0.2.0/24]\nresyncInterval: 1h\n');
    await agent.waitForLog('rules applied', { since: again });
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['192.0.2.0/24']));
  });
});

test('1 MiB of duplicate CIDRs logs a bounded number of bytes, not the duplicates at every resync', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    const dup = '  - 10.244.0.0/16\n';
    const text = `resyncInterval: 1s\nnonMasqueradeCIDRs:\n${dup.repeat(Math.floor((1024 * 1024 - 40) / dup.length))}`;
    cm.write(text);
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2']);
    await agent.waitForLog('rules applied', { timeoutMs: 60_000 });
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16']));
    const first = await agent.waitForLog('sync done', { timeoutMs: 60_000 });
    let mark = agent.logs.indexOf(first) + 1;
    const resyncs = 5;
    for (let i = 0; i < resyncs; i++) {
      const done = await agent.waitForLog('sync done', { since: mark, timeoutMs: 60_000 });
      mark = agent.logs.indexOf(done) + 1;
    }
    const firstSync = stdoutBytes(agent.logs.slice(0, agent.logs.indexOf(first) + 1));
    const later = stdoutBytes(agent.logs.slice(agent.logs.indexOf(first) + 1, mark));
    // 58,000 duplicates: the warnings logged in full are capped, the rest is one counting line.
    assert.equal(agent.matching((l) => l.msg === 'config warning').length, 20);
    assert.equal(agent.matching('more config warnings not shown').length, 1);
    assert.ok(firstSync < 32 * 1024, `first sync wrote ${firstSync} bytes`);
    assert.ok(later < resyncs * 1024, `${resyncs} quiet resyncs wrote ${later} bytes`);
    assert.equal(agent.otherOutput.length, 0);
  });
});
