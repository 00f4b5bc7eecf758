// The built agent against what surrounds its process: a stdout pipe nobody reads, signals sent by
// other tools (SIGUSR1, a SIGHUP storm) and HTTP clients that send the absolute form of a URL.
// Each test builds its own pod/node/outside namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canUseNetns } from '../netns/netns.js';
import { CHAIN, expectedSaveLines, inNs, metricSample, natCommand, ourSaveLines, pause, usePrivateXtablesLock, waitUntil, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const HEALTHZ = '127.0.0.1:10264';
const METRICS = '127.0.0.1:10265';
const HTTP_FLAGS = [`--healthz-bind-address=${HEALTHZ}`, `--metrics-bind-address=${METRICS}`];
const GOOD = 'nonMasqueradeCIDRs:\n  - 10.244.0.0/16\nresyncInterval: 1s\n';
const WANT = expectedSaveLines('ipv4', ['10.244.0.0/16']);

/** GET with curl inside `ns`; undefined when nothing answers within 2 s. */
function tryGet(ns: string, url: string): { status: number; body: string } | undefined {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'curl', '-sS', '--max-time', '2', '-w', '\n%{http_code}', url], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return undefined;
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
}

/**
 * A FIFO for the agent's stdout, filled to the brim before the agent starts, whose read end this
 * test holds without reading: a container log pipeline that stalled. drain() reads it from then on.
 */
function createStalledPipe(): { agentEnd: number; drain: () => string; close: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ima-agent-stdout-'));
  const fifo = join(dir, 'stdout');
  execFileSync('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  // Its own open file description, so the agent's end stays as the agent sets it.
  const filler = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  const line = Buffer.from(`${JSON.stringify({ filler: 'x'.repeat(100) })}\n`);
  for (;;) {
    try {
      writeSync(filler, line); // under PIPE_BUF: all of it or EAGAIN
    } catch {
      break;
    }
  }
  closeSync(filler);
  const agentEnd = openSync(fifo, constants.O_WRONLY);
  const chunk = Buffer.alloc(65536);
  return {
    agentEnd,
    drain() {
      let text = '';
      for (;;) {
        let n: number;
        try {
          n = readSync(reader, chunk);
        } catch {
          return text; // EAGAIN: nothing more for now
        }
        if (n === 0) return text;
        text += chunk.toString('utf8', 0, n);
      }
    },
    close() {
      closeSync(reader);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('stdout a full pipe nobody reads: /healthz answers, a flushed chain is repaired by the next resync, dropped lines are counted, a note follows the drain', { skip }, async (t) => {
  const pipe = createStalledPipe();
  try {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write(GOOD);
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=4', ...HTTP_FLAGS], { stdout: pipe.agentEnd });
      closeSync(pipe.agentEnd);
      await waitUntil('/healthz to answer with stdout blocked', () => tryGet(topo.node, `http://${HEALTHZ}/healthz`)?.status === 200);
      await waitUntil('the rules to be written with stdout blocked', () => ourSaveLines(topo.node, 'nft', 'ipv4').join('\n') === WANT.join('\n'));

      natCommand(topo.node, 'nft', 'ipv4', '-F', CHAIN);
      assert.notDeepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), WANT, 'the damage is real');
      // resyncInterval is 1 s: the next resync repairs it.
      await waitUntil('the flushed chain to be repaired', () => ourSaveLines(topo.node, 'nft', 'ipv4').join('\n') === WANT.join('\n'), 5_000);

      // Syncs at --v=4 log every command: SIGHUPs make lines faster than the log buffer holds.
      let dropped = 0;
      await waitUntil(
        'log lines to be dropped and counted',
        () => {
          for (let i = 0; i < 20; i++) agent.signal('SIGHUP');
          dropped = metricSample(tryGet(topo.node, `http://${METRICS}/metrics`)?.body ?? '', 'ip_masq_agent_log_lines_dropped_total') ?? 0;
          return dropped > 0;
        },
        60_000,
      );
      assert.equal(tryGet(topo.node, `http://${HEALTHZ}/healthz`)?.status, 200, '/healthz still answers');

      // A reader again: what was held comes out, then a note of what was lost.
      let text = '';
      let note: Record<string, unknown> | undefined;
      await waitUntil('a note of the dropped lines', () => {
        text += pipe.drain();
        note = text
          .split('\n')
          .filter((l) => l.includes('"msg"'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => String(l['msg']).includes('lines were dropped'));
        return note !== undefined;
      });
      t.diagnostic(`dropped on /metrics: ${dropped}; note: ${JSON.stringify(note)}`);
      assert.equal(note?.['level'], 'warn');
      assert.ok(Number(note?.['dropped']) >= dropped, `the note counts at least the ${dropped} lines /metrics showed: ${JSON.stringify(note)}`);
      const lines = text.split('\n').filter((l) => l !== '');
      for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `every line whole: ${l.slice(0, 200)}`);
      assert.ok(
        lines.some((l) => l.includes('"msg":"ip-masq-agent starting"')),
        'the first lines were kept while the pipe was full',
      );
    });
  } finally {
    pipe.close();
  }
});

test('SIGUSR1 opens no inspector: nothing listens on 9229, and the agent still syncs', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(GOOD);
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2']);
    await agent.waitForLog('rules applied');
    const mark = agent.mark();
    agent.signal('SIGUSR1');
    await pause(200);
    agent.signal('SIGHUP');
    await agent.waitForLog((l) => l.msg === 'sync done' && l.fields['reason'] === 'SIGHUP', { since: mark });
    const listening = inNs(topo.node, ['ss', '-ltnH']);
    assert.doesNotMatch(listening, /:9229\b/, `something listens on 9229 after SIGUSR1:\n${listening}`);
    assert.doesNotMatch(agent.stderr(), /Debugger listening/);
    // Node's --disable-sigusr1 (>= 22.14) keeps the signal from the agent's listener altogether.
    if (!(process.env['NODE_OPTIONS'] ?? '').includes('--disable-sigusr1')) await agent.waitForLog('SIGUSR1 ignored', { since: mark });
    natCommand(topo.node, 'nft', 'ipv4', '-F', CHAIN);
    await agent.waitForLog('drifted', { since: mark });
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), WANT);
  });
});

test('a SIGHUP storm is logged as a few lines with a count, not a line per signal', { skip }, async (t) => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(GOOD);
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft']);
    await agent.waitForLog('rules applied');
    const mark = agent.mark();
    const sent = 2000;
    for (let i = 0; i < sent; i++) {
      agent.signal('SIGHUP');
      if (i % 50 === 49) await pause(10);
    }
    // The last count comes when the quiet second after the storm ends.
    await pause(2_500);
    const lines = agent.matching('SIGHUP', mark);
    const counted = lines.reduce((sum, l) => sum + (typeof l.fields['signals'] === 'number' ? l.fields['signals'] : 1), 0);
    t.diagnostic(`${lines.length} SIGHUP lines for ${sent} signals sent, ${counted} delivered`);
    assert.ok(lines.length <= 5, `${lines.length} SIGHUP lines for ${sent} signals (${counted} delivered)`);
    assert.ok(lines.length >= 2 && counted > lines.length, `the storm is counted: ${lines.map((l) => l.raw).join('\n')}`);
    // Still syncing: a flushed chain is repaired.
    const after = agent.mark();
    natCommand(topo.node, 'nft', 'ipv4', '-F', CHAIN);
    await agent.waitForLog('drifted', { since: after });
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), WANT);
  });
});

test('the absolute form of a request URL (GET http://host:port/healthz) is served as its path', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(GOOD);
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', ...HTTP_FLAGS]);
    await agent.waitForLog('rules applied');
    await agent.waitForLog('serving /metrics');
    /** curl sends `target` as the request line's target, to the server of `base`. */
    const absolute = (target: string, base: string): { status: number; body: string } => {
      const out = inNs(topo.node, ['curl', '-sS', '--max-time', '5', '--request-target', target, '-w', '\n%{http_code}', base]);
      const cut = out.lastIndexOf('\n');
      return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
    };
    const health = absolute(`http://${HEALTHZ}/healthz`, `http://${HEALTHZ}/`);
    assert.equal(health.status, 200, health.body);
    assert.equal((JSON.parse(health.body) as { healthy: boolean }).healthy, true);
    const metrics = absolute(`http://${METRICS}/metrics?x=1`, `http://${METRICS}/`);
    assert.equal(metrics.status, 200, metrics.body);
    assert.match(metrics.body, /^ip_masq_agent_sync_total/m);
    assert.equal(absolute(`http://${HEALTHZ}/nothing`, `http://${HEALTHZ}/`).status, 404);
  });
});
