// The built agent against faults of its own tools and of its clients: a wrapper around
// iptables-nft-restore that forks a sleeper and hangs, one that floods stderr, one that fails,
// and more idle connections to the health port than the agent has file descriptors.
// Each test builds its own pod/node/outside namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import { rssKiB } from './agent-process.js';
import { createFailingShim, createShim, expectedSaveLines, httpGet, metricSample, ourSaveLines, usePrivateXtablesLock, waitUntil, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const HEALTHZ = '127.0.0.1:10264';
const METRICS = '127.0.0.1:10265';
const HTTP_FLAGS = [`--healthz-bind-address=${HEALTHZ}`, `--metrics-bind-address=${METRICS}`];
/** A long resync, so that whatever happens within seconds of a failure is a retry. */
const config = (cidrs: readonly string[], resync = '1m'): string => `nonMasqueradeCIDRs:\n${cidrs.map((c) => `  - ${c}\n`).join('')}resyncInterval: ${resync}\n`;
const FIRST = ['10.244.0.0/16'];
const SECOND = ['10.244.0.0/16', '198.51.100.0/24'];

/** /metrics of the agent in `ns`, or '' while it does not answer. */
function metrics(ns: string): string {
  try {
    return httpGet(ns, `http://${METRICS}/metrics`).body;
  } catch {
    return '';
  }
}

const retries = (ns: string): number => metricSample(metrics(ns), 'ip_masq_agent_sync_retries_total') ?? 0;

/** Whether a pid is gone (or a zombie): it holds no pipe and runs nothing. */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

test(
  'a wrapper around iptables-nft-restore that forks a sleeper and hangs: the sync fails at --command-timeout, the group is killed, retried with backoff, and recovers',
  { skip, timeout: 120_000 },
  async () => {
    const shim = createShim('iptables-nft-restore', '  sleep 600 &\n  echo $! >> "$SHIM_DIR/pids"\n  sleep 600');
    try {
      await withScene(async ({ topo, cm, startAgent }) => {
        cm.write(config(FIRST));
        const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--command-timeout=2s', ...HTTP_FLAGS], { env: { PATH: shim.path } });
        await agent.waitForLog('rules applied');
        writeFileSync(shim.marker, '');
        const mark = agent.mark();
        const changedAt = Date.now();
        cm.write(config(SECOND));
        const failed = await agent.waitForLog('sync failed', { since: mark, timeoutMs: 20_000 });
        console.log(`# config change -> sync failed (timeout) in ${Date.now() - changedAt} ms with --command-timeout=2s`);
        assert.equal(failed.fields['failure'], 'timeout', failed.raw);
        assert.match(String(failed.fields['error']), /^iptables-nft-restore -w 5 --noflush: timed out after 2s; killed its process group \(--command-timeout\)$/);
        await waitUntil('two retries', () => retries(topo.node) >= 2, 30_000);
        assert.equal(agent.matching('sync failed', mark).length, 1, 'the same timeout is logged once, not at every retry');
        assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', FIRST), 'the old rules stay in force');

        rmSync(shim.marker);
        await agent.waitForLog('sync recovered', { since: mark, timeoutMs: 30_000 });
        assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', SECOND));
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4);
        const sleepers = readFileSync(join(shim.dir, 'pids'), 'utf8').trim().split('\n').map(Number);
        assert.ok(sleepers.length >= 2, `each attempt forked a sleeper: ${sleepers.join(', ')}`);
        await waitUntil('the forked sleepers to be gone', () => sleepers.every(gone), 5_000);
      });
    } finally {
      shim.cleanup();
    }
  },
);

test('SIGTERM while a command hangs: the agent exits 0 within its 1 s grace, and the hung command and its whole process group go with it', { skip, timeout: 60_000 }, async () => {
  const shim = createShim('iptables-nft-restore', '  sleep 600 &\n  echo $! >> "$SHIM_DIR/pids"\n  sleep 600');
  try {
    await withScene(async ({ cm, startAgent }) => {
      cm.write(config(FIRST));
      writeFileSync(shim.marker, '');
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft'], { env: { PATH: shim.path } });
      const pids = join(shim.dir, 'pids');
      await waitUntil('the wrapper to fork its sleeper', () => existsSync(pids) && readFileSync(pids, 'utf8').trim() !== '', 20_000);
      const sleeper = Number(readFileSync(pids, 'utf8').trim().split('\n')[0]);
      const stopped = await agent.stop(5_000);
      assert.equal(stopped.code, 0, agent.stderr());
      await waitUntil('the sleeper to be gone with the agent', () => gone(sleeper), 5_000);
    });
  } finally {
    shim.cleanup();
  }
});

test('a restore that prints 64 MB on stderr and fails: the log line and /healthz stay small, memory stays bounded', { skip, timeout: 120_000 }, async () => {
  const shim = createShim('iptables-nft-restore', "  head -c 67108864 /dev/zero | tr '\\0' x >&2\n  exit 1");
  try {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write(config(FIRST));
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', ...HTTP_FLAGS], { env: { PATH: shim.path } });
      await agent.waitForLog('rules applied');
      await agent.waitForLog('serving /metrics');
      writeFileSync(shim.marker, '');
      const mark = agent.mark();
      cm.write(config(SECOND));
      const failed = await agent.waitForLog('sync failed', { since: mark, timeoutMs: 30_000 });
      await waitUntil('a retry of the flooding restore', () => retries(topo.node) >= 1, 30_000);
      const health = httpGet(topo.node, `http://${HEALTHZ}/healthz`);
      const rss = rssKiB(agent.pid);
      const logBytes = agent.logs.slice(mark).reduce((n, l) => n + l.raw.length, 0);
      console.log(`# 64 MB of stderr: log line ${failed.raw.length} B (all lines since: ${logBytes} B), /healthz body ${health.body.length} B, RSS ${Math.round(rss / 1024)} MiB`);
      assert.ok(failed.raw.length < 2048, `log line: ${failed.raw.length} bytes`);
      assert.match(String(failed.fields['error']), /x{200}… \(cut, \d+ bytes\)/);
      assert.ok(health.body.length < 16_384, `/healthz body: ${health.body.length} bytes`);
      assert.ok(rss < 256 * 1024, `RSS ${rss} KiB`);

      rmSync(shim.marker);
      await agent.waitForLog('sync recovered', { since: mark, timeoutMs: 30_000 });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', SECOND));
    });
  } finally {
    shim.cleanup();
  }
});

test('a failed restore is retried within seconds, not a resync (1m) later; /metrics counts the retries and the backoff; a success resets it', { skip, timeout: 120_000 }, async () => {
  const shim = createFailingShim('iptables-nft-restore');
  try {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write(config(FIRST));
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', ...HTTP_FLAGS], { env: { PATH: shim.path } });
      await agent.waitForLog('rules applied');
      await agent.waitForLog('serving /metrics');
      assert.equal(retries(topo.node), 0);
      writeFileSync(shim.marker, '');
      const mark = agent.mark();
      cm.write(config(SECOND));
      await agent.waitForLog('sync failed', { since: mark });
      const failedAt = Date.now();
      // 1 s + 2 s + 4 s of backoff: three retries well before the 1m resync.
      await waitUntil('three retries', () => retries(topo.node) >= 3, 30_000);
      console.log(`# three retries ${Date.now() - failedAt} ms after the first failure (resync interval 60 s)`);
      const text = metrics(topo.node);
      assert.ok((metricSample(text, 'ip_masq_agent_sync_retry_backoff_seconds') ?? 0) >= 1, text);
      assert.ok((metricSample(text, 'ip_masq_agent_sync_total{family="ipv4",result="error"}') ?? 0) >= 4, text);
      assert.equal(agent.matching('sync failed', mark).length, 1);

      rmSync(shim.marker);
      await agent.waitForLog('sync recovered', { since: mark, timeoutMs: 30_000 });
      assert.ok(Date.now() - failedAt < 60_000, 'recovered by a retry, before the resync');
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', SECOND));
      assert.equal(metricSample(metrics(topo.node), 'ip_masq_agent_sync_retry_backoff_seconds'), 0);
    });
  } finally {
    shim.cleanup();
  }
});

/** Opens `count` TCP connections to 127.0.0.1:port from a client process inside `ns` and holds them. */
async function holdConnections(ns: string, port: number, count: number): Promise<{ report: string; release: () => Promise<void> }> {
  const script = `
const net = require('node:net');
const [count, port] = process.argv.slice(1).map(Number);
let connected = 0, failed = 0, done = false;
const socks = [];
const check = () => { if (!done && connected + failed === count) { done = true; console.log(JSON.stringify({ connected, failed })); } };
for (let i = 0; i < count; i++) {
  const s = net.connect(port, '127.0.0.1');
  s.on('connect', () => { connected++; check(); });
  s.on('error', () => { failed++; check(); });
  socks.push(s);
}
setTimeout(() => { if (!done) { done = true; console.log(JSON.stringify({ connected, failed, pending: count - connected - failed })); } }, 15000);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;
  const client = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, String(count), String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => client.once('close', () => resolve()));
  const report = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the connection client did not report')), 30_000);
    client.stdout.setEncoding('utf8');
    client.stdout.once('data', (d: string) => {
      clearTimeout(t);
      resolve(d.trim());
    });
  });
  return {
    report,
    release: async () => {
      client.stdin.end();
      await exited;
    },
  };
}

test('nofile=1024 and 1,100 idle connections to the health port: the agent stays alive, keeps syncing, and /healthz answers again', { skip, timeout: 120_000 }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config(FIRST, '1s'));
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2', ...HTTP_FLAGS], { prefix: ['prlimit', '--nofile=1024:1024', '--'] });
    await agent.waitForLog('rules applied');
    await agent.waitForLog('serving /healthz');
    const flood = await holdConnections(topo.node, 10264, 1100);
    try {
      const fds = readdirSync(`/proc/${agent.pid}/fd`).length;
      console.log(`# 1,100 connections (${flood.report}): the agent holds ${fds} descriptors`);
      assert.ok(fds < 512, `descriptors in use: ${fds}`);
      const mark = agent.mark();
      cm.write(config(SECOND, '1s'));
      await agent.waitForLog('rules applied', { since: mark, timeoutMs: 20_000 });
      for (let i = 0; i < 3; i++) await agent.waitForLog('sync done', { since: agent.mark(), timeoutMs: 10_000 });
      assert.deepEqual(
        agent.matching('sync failed', mark).map((l) => l.raw),
        [],
      );
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', SECOND));
      // Held idle connections time out (10 s), so the probe answers even while the client keeps them.
      await waitUntil(
        '/healthz 200 during the flood',
        () => {
          try {
            return httpGet(topo.node, `http://${HEALTHZ}/healthz`).status === 200;
          } catch {
            return false;
          }
        },
        30_000,
      );
    } finally {
      await flood.release();
    }
    assert.equal(httpGet(topo.node, `http://${HEALTHZ}/healthz`).status, 200);
    assert.ok(existsSync(`/proc/${agent.pid}`), 'the agent is alive');
    assert.doesNotMatch(agent.stderr(), /EMFILE|Unhandled/);
    assert.equal(agent.matching('HTTP connection limit reached').length, 1, 'the flood is reported once');
  });
});
