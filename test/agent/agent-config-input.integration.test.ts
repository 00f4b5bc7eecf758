// How the built agent copes with config input that is not a config: the path swapped for a
// directory, a FIFO or a dangling symlink while it runs; a config nested thousands of levels deep,
// live and at start; a link to /proc/self/environ; a restart with an invalid config while rules
// of ours are in the kernel. In each, the last good rules stay, the error is logged and in
// /healthz, the agent stays alive, and a good config applies again.
// Each test builds its own pod/node/outside namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import type { AgentProcess, ConfigMapDir, LogLine } from './agent-process.js';
import { expectedSaveLines, inNs, jumpCount, ourSaveLines, usePrivateXtablesLock, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const HEALTHZ = '127.0.0.1:10266';
const HTTP_FLAGS = [`--healthz-bind-address=${HEALTHZ}`, '--metrics-bind-address='];
const config = (cidrs: readonly string[]): string => `nonMasqueradeCIDRs: [${cidrs.join(', ')}]\nresyncInterval: 1h\n`;
const CIDRS_A = ['10.244.0.0/16', '198.51.100.0/24'];
const CIDRS_B = ['10.244.0.0/16'];
/** 60 KB: twenty lists 1,500 levels deep. Before the bound, this aborted the agent ("FATAL ERROR: RegExpCompiler Allocation failed"). */
const DEEP = `nonMasqueradeCIDRs: [${Array(20)
  .fill(`${'['.repeat(1500)}${']'.repeat(1500)}`)
  .join(', ')}]\n`;
const NESTING_ERROR = /:1:\d+: lists and mappings nest more than 16 levels deep here/;

const errorsOf = (l: LogLine): string => (Array.isArray(l.fields['errors']) ? l.fields['errors'].join('\n') : '');

interface HealthBody {
  healthy: boolean;
  configValid: boolean;
  configErrors: string[];
  rulesKeptFromKernel?: string[];
}

/** GETs /healthz with curl inside the node namespace. */
function healthz(ns: string): { status: number; raw: string; body: HealthBody } {
  const out = inNs(ns, ['curl', '-sS', '--max-time', '5', '-w', '\n%{http_code}', `http://${HEALTHZ}/healthz`]);
  const cut = out.lastIndexOf('\n');
  const raw = out.slice(0, cut);
  return { status: Number(out.slice(cut + 1)), raw, body: JSON.parse(raw) as HealthBody };
}

let generation = 0;
/**
 * Publishes the next ConfigMap generation as kubelet's atomic writer does (a new dot-directory,
 * `..data` swapped to it by rename), with `make` creating the `ip-masq-agent` entry in it, or
 * not (a dangling link). The swap is atomic, so the agent never sees the path missing.
 */
function publish(cm: ConfigMapDir, make: (entry: string) => void): void {
  const dir = join(cm.dir, `..2026_12_01_09_00_00.swap${++generation}`);
  mkdirSync(dir);
  make(join(dir, 'ip-masq-agent'));
  symlinkSync(basename(dir), join(cm.dir, '..data_tmp'));
  renameSync(join(cm.dir, '..data_tmp'), join(cm.dir, '..data'));
}

/** iptables-nft-save of the nat table without its timestamped comment lines. */
function natSave(ns: string): string {
  return inNs(ns, ['iptables-nft-save', '-t', 'nat'])
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n');
}

/** Tracks whether the agent process has exited. */
function watchExit(agent: AgentProcess): () => boolean {
  let exited = false;
  void agent.exited.then(() => {
    exited = true;
  });
  return () => exited;
}

const BAD_PATHS: readonly { name: string; make: (entry: string) => void; problem: RegExp }[] = [
  {
    name: 'a directory',
    make: (entry) => {
      mkdirSync(entry);
      // Not read: the agent started in file mode.
      writeFileSync(join(entry, 'ip-masq-agent'), config(['192.0.2.0/24']));
    },
    problem: /is a directory, not a regular file \(it was not a directory when the agent started/,
  },
  { name: 'a FIFO', make: (entry) => execFileSync('mkfifo', [entry]), problem: /is a FIFO \(named pipe\), not a regular file/ },
  { name: 'a dangling symlink', make: () => undefined, problem: /symbolic link to "\.\.data\/ip-masq-agent", which does not exist/ },
];

test('the config path swapped for a directory, a FIFO, a dangling symlink: last good rules stay, the error is logged and in /healthz, a good file applies again', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config(CIDRS_A));
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2', ...HTTP_FLAGS]);
    const exited = watchExit(agent);
    await agent.waitForLog('rules applied');
    await agent.waitForLog('serving');
    let good = CIDRS_A;
    for (const bad of BAD_PATHS) {
      const mark = agent.mark();
      publish(cm, bad.make);
      const rejected = await agent.waitForLog('config rejected', { since: mark });
      assert.equal(rejected.level, 'error', bad.name);
      assert.match(errorsOf(rejected), bad.problem, `${bad.name}: ${rejected.raw}`);
      assert.ok(errorsOf(rejected).includes(cm.file), `${bad.name}: the error names the path: ${rejected.raw}`);
      await agent.waitForLog('sync done', { since: agent.logs.indexOf(rejected) });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', good), `${bad.name}: the last good rules stay`);
      assert.equal(agent.matching('defaults in use', mark).length, 0, `${bad.name}: no silent switch to the defaults`);
      const h = healthz(topo.node);
      assert.equal(h.status, 200, h.raw);
      assert.equal(h.body.configValid, false, h.raw);
      assert.match(h.body.configErrors.join('\n'), bad.problem, h.raw);
      assert.equal(exited(), false, `${bad.name}: the agent is alive`);

      // Recovery: a good file (with other CIDRs, so the rewrite shows) applies again.
      good = good === CIDRS_A ? CIDRS_B : CIDRS_A;
      const fixMark = agent.mark();
      cm.write(config(good));
      await agent.waitForLog('rules applied', { since: fixMark });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', good), `${bad.name}: recovered`);
      assert.equal(healthz(topo.node).body.configValid, true);
    }
    assert.equal(jumpCount(topo.node, 'nft', 'ipv4'), 1);
    assert.equal(agent.otherOutput.length, 0, agent.otherOutput.join('\n'));
  });
});

test('a config nested 1,500 levels deep, live and then at a restart: the agent stays alive and the rules in the kernel stay untouched', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config(CIDRS_A));
    const first = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2', ...HTTP_FLAGS]);
    const firstExited = watchExit(first);
    await first.waitForLog('rules applied');
    const before = natSave(topo.node);

    let mark = first.mark();
    cm.write(DEEP);
    const rejected = await first.waitForLog('config rejected', { since: mark });
    assert.match(errorsOf(rejected), NESTING_ERROR, rejected.raw);
    await first.waitForLog('sync done', { since: first.logs.indexOf(rejected) });
    assert.equal(natSave(topo.node), before, 'live: rules untouched');
    assert.equal(firstExited(), false, 'live: the agent is alive');
    assert.equal(first.stderr(), '', 'no stack overflow or V8 abort on stderr');
    await first.stop();

    // A restart (kubelet, upgrade) with the bad file still mounted: our rules are in the kernel.
    const second = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2', ...HTTP_FLAGS]);
    const secondExited = watchExit(second);
    const onStart = await second.waitForLog('config rejected on first start');
    assert.match(errorsOf(onStart), NESTING_ERROR, onStart.raw);
    const kept = await second.waitForLog('keeping the rules found in the kernel');
    assert.equal(kept.fields['family'], 'ipv4');
    await second.waitForLog('sync done');
    await second.waitForLog('serving');
    assert.equal(natSave(topo.node), before, 'at start: iptables-save identical, not the defaults');
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4, '198.51.100.0/24 is still exempt');
    assert.equal(second.matching('rules applied').length, 0);
    const h = healthz(topo.node);
    assert.equal(h.status, 200, h.raw);
    assert.equal(h.body.configValid, false, h.raw);
    assert.match(h.body.configErrors.join('\n'), NESTING_ERROR);
    assert.deepEqual(h.body.rulesKeptFromKernel, ['ipv4'], h.raw);

    // Retried on change: the first valid config applies.
    mark = second.mark();
    cm.write(config(CIDRS_B));
    await second.waitForLog('rules applied', { since: mark });
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', CIDRS_B));
    assert.equal(healthz(topo.node).body.rulesKeptFromKernel, undefined);
    assert.equal(secondExited(), false);
  });
});

test('a start with an invalid config (bad CIDR) and our rules in the kernel: rules untouched, /healthz says the config is invalid', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config(CIDRS_A));
    const first = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2']);
    await first.waitForLog('rules applied');
    await first.stop();
    const before = natSave(topo.node);

    cm.write('nonMasqueradeCIDRs: [10.244.0.0/33]\nresyncInterval: 1h\n');
    const second = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2', ...HTTP_FLAGS]);
    await second.waitForLog('keeping the rules found in the kernel');
    await second.waitForLog('sync done');
    await second.waitForLog('serving');
    assert.equal(natSave(topo.node), before);
    const h = healthz(topo.node);
    assert.equal(h.body.configValid, false, h.raw);
    assert.match(h.body.configErrors.join('\n'), /10\.244\.0\.0\/33/);
    assert.deepEqual(h.body.rulesKeptFromKernel, ['ipv4']);
  });
});

test('a config linked to /proc/self/environ: neither the log nor /healthz shows the environment', { skip }, async () => {
  const secret = `marker-${process.pid}-${Date.now()}-do-not-print`;
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config(CIDRS_A));
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2', ...HTTP_FLAGS], { env: { IMA_TEST_SECRET: secret } });
    await agent.waitForLog('rules applied');
    await agent.waitForLog('serving');
    const mark = agent.mark();
    publish(cm, (entry) => symlinkSync('/proc/self/environ', entry));
    const rejected = await agent.waitForLog('config rejected', { since: mark });
    assert.match(errorsOf(rejected), /must be a mapping of keys .*got a string of \d+ bytes \(its text is not shown/, rejected.raw);
    await agent.waitForLog('sync done', { since: agent.logs.indexOf(rejected) });
    const h = healthz(topo.node);
    assert.equal(h.body.configValid, false, h.raw);
    const everything = [...agent.logs.map((l) => l.raw), agent.stderr(), h.raw].join('\n');
    assert.ok(!everything.includes(secret), "the marker variable's value is not printed");
    assert.ok(!everything.includes('IMA_TEST_SECRET'), 'nor its name');
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', CIDRS_A));
  });
});
