// Benchmarks of what the agent costs between changes and at a change (issue 11), not part of the
// test suite:
//
//   npx tsc -p tsconfig.json && sudo node dist/bench/resync.bench.js [--sections=cpu,swap,big,mem]
//        [--seconds=60] [--resync=1s] [--sizes=64,10000] [--resyncs=10000] [--swaps=2000] [--big-swaps=3]
//        [--big-cidrs=50000] [--big-backends=nftables,iptables-legacy,iptables-nft]
//
// Needs root (network namespaces). Every agent and every netfilter command runs inside a namespace
// this script creates and deletes (with a private xtables lock); nothing touches the host's state.
// Each target is printed with reportTarget (bench/targets.ts), against a baseline measured in the
// same run where one can be measured here:
//   cpu   a quiet resync at 64 and 10,000 CIDRs (iptables-nft, 1 s resync, HTTP on): CPU per resync
//         (agent + its children) against the raw read-back commands it runs (`-S CHAIN` and
//         `-S POSTROUTING`, spawned from a bare node process in the same namespace); and CPU over
//         60 s against the reference agent's figures from issue 11 (not buildable here)
//   swap  kubelet-style `..data` swap -> rules applied, 100 swaps at 64 CIDRs, p99
//   big   a kubelet-style swap between two 50,000-CIDR files on nftables, iptables-legacy and
//         iptables-nft: the agent's time after the parse ("config applied" -> "sync done":
//         normalise, render, apply, jump check) against the raw `nft -f` / `iptables-restore` of
//         the same script; and what a quiet resync (read-back and compare) costs at that size
//   mem   an agent in this process (fake clock, real loader and iptables-nft in a namespace):
//         heap after GC and RSS before and after 10,000 resyncs and 2,000 config swaps
// The figures are printed, never asserted.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createAgent } from '../src/agent/agent.js';
import { createIptablesBackend } from '../src/backends/iptables/iptables-backend.js';
import { renderRestorePayload } from '../src/backends/iptables/render.js';
import { renderNftScript } from '../src/backends/nftables/render.js';
import { agentOptionsFromFlags } from '../src/cli/agent-options.js';
import { parseFlags } from '../src/cli/flags.js';
import { ParseCache, loadConfig } from '../src/config/load.js';
import { createLogger, type Logger } from '../src/observe/log.js';
import { createMetrics } from '../src/observe/metrics.js';
import { buildPolicy } from '../src/policy/build.js';
import type { FamilyPolicy } from '../src/policy/types.js';
import { canUseNetns, createNamespace, deleteNamespace } from '../test/netns/netns.js';
import { netnsRunner } from '../test/netns/netns-runner.js';
import { createRunner } from '../src/exec/runner.js';
import { createFakeClock } from '../test/agent/fake-clock.js';
import { cpuTicks, createConfigMapDir, createPrivateLock, rssKiB, type LogLine } from '../test/agent/agent-process.js';
import { assertIsNode, startBenchNode, type BenchNode } from './bench-node.js';
import { printTargetSummary, reportTarget } from './targets.js';

const CHAIN = 'IP-MASQ-AGENT';
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
/** The reference agent's CPU over 60 s idle at a 1 s resync (own + children), from issue 11. */
const REFERENCE_CPU_S: Readonly<Record<number, number>> = { 64: 0.55, 10_000: 14 };

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k ?? '', v ?? ''] as const;
  }),
);
const num = (name: string, dflt: number): number => (args.has(name) ? Number(args.get(name)) : dflt);
const sections = new Set((args.get('sections') ?? 'cpu,swap,big,mem').split(','));

/**
 * n disjoint CIDRs: /24s in 10.244.0.0/16 up to 256 of them, else /30s in 10.0.0.0/8 from
 * `base` (one /30 per 4 addresses), up to 4 million.
 */
function cidrs(n: number, base = 0): string[] {
  if (n <= 256) return Array.from({ length: n }, (_, i) => `10.244.${i}.0/24`);
  return Array.from({ length: n }, (_, i) => {
    const x = base + i * 4;
    return `10.${(x >> 16) & 255}.${(x >> 8) & 255}.${x & 255}/30`;
  });
}

function configText(list: readonly string[], resync: string): string {
  return `nonMasqueradeCIDRs:\n${list.map((c) => `  - ${c}\n`).join('')}cidrLimit: ${Math.max(64, list.length)}\nresyncInterval: ${resync}\n`;
}

/** Nearest-rank percentile. */
function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? Number.NaN;
}
const median = (xs: readonly number[]): number => percentile(xs, 0.5);
const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const isSyncDone =
  (reason?: string) =>
  (l: LogLine): boolean =>
    l.msg === 'sync done' && (reason === undefined || l.fields['reason'] === reason);

// Runs inside the namespace in a bare node: the read-back commands of a quiet iptables resync,
// spawned as the agent spawns them, `iterations` times. Prints per-iteration wall ms and the CPU
// of the whole loop (this process's own and its children's), in ms.
const RAW_READ_SCRIPT = `
const { spawnSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const [iterations, chain] = process.argv.slice(1);
const ticks = () => { const f = readFileSync('/proc/self/stat', 'utf8').slice(readFileSync('/proc/self/stat', 'utf8').lastIndexOf(')') + 2).split(' '); return [Number(f[11]) + Number(f[12]), Number(f[13]) + Number(f[14])]; };
const wall = [];
const t0 = ticks();
for (let i = 0; i < Number(iterations); i++) {
  const t = process.hrtime.bigint();
  for (const c of [chain, 'POSTROUTING']) {
    const r = spawnSync('iptables-nft', ['-w', '5', '-t', 'nat', '-S', c], { maxBuffer: 1 << 28 });
    if (r.status !== 0) { process.stderr.write(String(r.stderr)); process.exit(1); }
  }
  wall.push(Number(process.hrtime.bigint() - t) / 1e6);
}
const t1 = ticks();
process.stdout.write(JSON.stringify({ wall, ownTicks: t1[0] - t0[0], childTicks: t1[1] - t0[1] }));
`;

function rawReadBack(node: BenchNode, iterations: number): { wallMs: number; cpuMs: number; childMs: number } {
  const r = spawnSync('ip', ['netns', 'exec', node.ns, process.execPath, '-e', RAW_READ_SCRIPT, String(iterations), CHAIN], {
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 1 << 20,
    env: { ...process.env, ...node.lockEnv },
  });
  if (r.status !== 0) throw new Error(`raw read-back failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { wall: number[]; ownTicks: number; childTicks: number };
  const perTick = 1000 / CLK_TCK / iterations;
  return { wallMs: median(out.wall), cpuMs: (out.ownTicks + out.childTicks) * perTick, childMs: out.childTicks * perTick };
}

async function benchCpu(n: number, seconds: number, resync: string): Promise<void> {
  console.log(`\n[cpu] ${seconds} s idle at a ${resync} resync, ${n.toLocaleString('en')} CIDRs, iptables-nft`);
  const node = startBenchNode(`rs-cpu${n}`, configText(cidrs(n), resync), { flags: ['--iptables-mode=nft'] });
  try {
    await node.agent.waitForLog('rules applied', { timeoutMs: 120_000 });
    const from = node.agent.mark();
    // A few quiet resyncs first: start-up and the first apply are not what is measured.
    while (node.agent.matching(isSyncDone('resync'), from).length < (resync === '1s' ? 3 : 1)) await pause(100);
    assertIsNode(node.agent.pid);
    const start = node.agent.mark();
    const c0 = cpuTicks(node.agent.pid);
    const t0 = performance.now();
    await pause(seconds * 1000);
    const c1 = cpuTicks(node.agent.pid);
    const elapsed = (performance.now() - t0) / 1000;
    const done = node.agent.matching(isSyncDone('resync'), start);
    const notQuiet = done.filter((l) => JSON.stringify(l.fields['families']) !== '["ipv4:unchanged"]');
    if (notQuiet.length > 0) throw new Error(`a resync was not quiet: ${notQuiet[0]?.raw}`);
    const own = (c1.self - c0.self) / CLK_TCK;
    const children = (c1.children - c0.children) / CLK_TCK;
    const total60 = ((own + children) * 60) / elapsed;
    const perResync = ((own + children) * 1000) / Math.max(1, done.length);
    console.log(`  own ${own.toFixed(2)} s + children ${children.toFixed(2)} s in ${elapsed.toFixed(1)} s, ${done.length} resyncs; RSS ${(rssKiB(node.agent.pid) / 1024).toFixed(0)} MiB`);
    await node.agent.stop();
    const raw = rawReadBack(node, n > 1000 ? 15 : 60);
    reportTarget({
      name: `quiet resync CPU (agent + children), ${n.toLocaleString('en')} CIDRs`,
      measured: perResync,
      limit: 1.2 * raw.cpuMs,
      unit: 'ms',
      baseline: `1.2x raw -S ${CHAIN} + -S POSTROUTING from a bare node: ${fmt(raw.cpuMs)} ms CPU (the two commands alone ${fmt(raw.childMs)} ms; wall ${fmt(raw.wallMs)} ms)`,
    });
    if (resync !== '1s') {
      console.log(`  CPU per minute at a ${resync} resync: ${fmt(total60 * 1000)} ms (own + children)`);
      return;
    }
    reportTarget({
      name: `CPU over 60 s idle at a 1 s resync (own + children), ${n.toLocaleString('en')} CIDRs`,
      measured: total60,
      limit: REFERENCE_CPU_S[n] ?? Number.NaN,
      unit: 's',
      baseline: 'the reference agent v2.11.0, issue 11 (fixed: not buildable here)',
    });
  } finally {
    await node.close();
  }
}

function rawRestoreMs(node: BenchNode, payload: string, rounds: number): number {
  const file = join(mkdtempSync(join(tmpdir(), 'ima-rs-')), 'payload');
  writeFileSync(file, payload);
  const script = `const { spawnSync } = require('node:child_process'); const { readFileSync } = require('node:fs'); const input = readFileSync(process.argv[1]); const out = []; for (let i = 0; i < Number(process.argv[2]); i++) { const t = process.hrtime.bigint(); const r = spawnSync('iptables-nft-restore', ['-w', '5', '--noflush'], { input }); if (r.status !== 0) { process.stderr.write(String(r.stderr)); process.exit(1); } out.push(Number(process.hrtime.bigint() - t) / 1e6); } process.stdout.write(JSON.stringify(out));`;
  try {
    const r = spawnSync('ip', ['netns', 'exec', node.ns, process.execPath, '-e', script, file, String(rounds)], { encoding: 'utf8', env: { ...process.env, ...node.lockEnv }, timeout: 120_000 });
    if (r.status !== 0) throw new Error(`raw restore failed: ${r.stderr}`);
    return median(JSON.parse(r.stdout) as number[]);
  } finally {
    rmSync(file, { force: true });
  }
}

async function benchSwap(): Promise<void> {
  console.log('\n[swap] kubelet-style ..data swap -> rules applied, 100 swaps, 64 CIDRs, iptables-nft, resyncInterval 1h');
  const a = configText(cidrs(64), '1h');
  const b = configText([...cidrs(64), '198.51.100.0/24'], '1h');
  const node = startBenchNode('rs-swap', a, { flags: ['--iptables-mode=nft'] });
  try {
    await node.agent.waitForLog('sync done', { timeoutMs: 30_000 });
    const lat: number[] = [];
    for (let i = 0; i < 100; i++) {
      const mark = node.agent.mark();
      const swappedAt = node.cm.write(i % 2 === 0 ? b : a);
      const applied = await node.agent.waitForLog('rules applied', { since: mark, timeoutMs: 10_000 });
      lat.push(applied.time - swappedAt);
      await node.agent.waitForLog(isSyncDone(), { since: node.agent.logs.indexOf(applied), timeoutMs: 10_000 });
      await pause(20);
    }
    const syncs = node.agent.matching(isSyncDone('config changed')).length;
    await node.agent.stop();
    const opts = agentOptionsFromFlags(parseFlags([]));
    const dir = mkdtempSync(join(tmpdir(), 'ima-rs-cfg-'));
    const file = join(dir, 'ip-masq-agent');
    writeFileSync(file, b);
    const fp = buildPolicy((await loadConfig(file, opts.config)).config, opts.policy).families[0]!;
    rmSync(dir, { recursive: true, force: true });
    const raw = rawRestoreMs(node, renderRestorePayload(fp, { chain: CHAIN, randomFully: fp.randomFully }), 20);
    console.log(`  p50 ${fmt(percentile(lat, 0.5))} ms, max ${fmt(Math.max(...lat))} ms; ${syncs} syncs for 100 swaps`);
    reportTarget({
      name: 'ConfigMap swap -> rules applied, p99 of 100, 64 CIDRs',
      measured: percentile(lat, 0.99),
      limit: 100,
      unit: 'ms',
      baseline: `fixed (issue 11); raw iptables-nft-restore of the payload ${fmt(raw)} ms median`,
    });
  } finally {
    await node.close();
  }
}

interface BigBackend {
  readonly name: string;
  readonly flags: readonly string[];
  /** The raw command that applies the same script, and how to render that script. */
  readonly raw: readonly string[];
  render(fp: FamilyPolicy): string;
}

const BIG_BACKENDS: readonly BigBackend[] = [
  { name: 'nftables', flags: ['--backend=nftables'], raw: ['nft', '-f', '-'], render: (fp) => renderNftScript([fp]) },
  {
    name: 'iptables-legacy',
    flags: ['--backend=iptables', '--iptables-mode=legacy'],
    raw: ['iptables-legacy-restore', '-w', '5', '--noflush'],
    render: (fp) => renderRestorePayload(fp, { chain: CHAIN, randomFully: fp.randomFully }),
  },
  {
    name: 'iptables-nft',
    flags: ['--backend=iptables', '--iptables-mode=nft'],
    raw: ['iptables-nft-restore', '-w', '5', '--noflush'],
    render: (fp) => renderRestorePayload(fp, { chain: CHAIN, randomFully: fp.randomFully }),
  },
];

/** The one family policy the agent builds from `text` with `flags` (its own flag parsing and loader). */
async function policyFor(text: string, flags: readonly string[]): Promise<FamilyPolicy> {
  const opts = agentOptionsFromFlags(parseFlags(flags));
  const dir = mkdtempSync(join(tmpdir(), 'ima-rs-cfg-'));
  try {
    const file = join(dir, 'ip-masq-agent');
    writeFileSync(file, text);
    const fp = buildPolicy((await loadConfig(file, opts.config)).config, opts.policy).families[0];
    if (!fp) throw new Error('no IPv4 policy');
    return fp;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Times the raw tool applying each script in turn, inside the namespace; ms per apply. */
function rawApplyMs(node: BenchNode, argv: readonly string[], scripts: readonly string[]): number[] {
  const dir = mkdtempSync(join(tmpdir(), 'ima-rs-raw-'));
  try {
    const files = scripts.map((s, i) => {
      const f = join(dir, `s${i}`);
      writeFileSync(f, s);
      return f;
    });
    const script = `const { spawnSync } = require('node:child_process'); const { readFileSync } = require('node:fs'); const [argv, ...files] = [JSON.parse(process.argv[1]), ...process.argv.slice(2)]; const out = []; for (const f of files) { const input = readFileSync(f); const t = process.hrtime.bigint(); const r = spawnSync(argv[0], argv.slice(1), { input, maxBuffer: 1 << 26 }); if (r.status !== 0) { process.stderr.write(String(r.stderr).slice(0, 2000)); process.exit(1); } out.push(Number(process.hrtime.bigint() - t) / 1e6); } process.stdout.write(JSON.stringify(out));`;
    const r = spawnSync('ip', ['netns', 'exec', node.ns, process.execPath, '-e', script, JSON.stringify(argv), ...files], {
      encoding: 'utf8',
      env: { ...process.env, ...node.lockEnv },
      timeout: 300_000,
    });
    if (r.status !== 0) throw new Error(`raw ${argv[0]} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as number[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchBig(backend: BigBackend, swaps: number, n: number): Promise<void> {
  console.log(`\n[big] kubelet-style swap between two ${n.toLocaleString('en')}-CIDR files, ${backend.name}`);
  const texts = [configText(cidrs(n, 0), '1h'), configText(cidrs(n, 1 << 21), '1h')] as const;
  const node = startBenchNode('rs-big', texts[0], { flags: backend.flags });
  try {
    await node.agent.waitForLog(isSyncDone(), { timeoutMs: 180_000 });
    const total: number[] = [];
    const afterParse: number[] = [];
    for (let i = 1; i <= swaps; i++) {
      const mark = node.agent.mark();
      const swappedAt = node.cm.write(texts[i % 2]!);
      const done = await node.agent.waitForLog(isSyncDone(), { since: mark, timeoutMs: 120_000 });
      const parsed = node.agent.matching('config applied', mark)[0];
      if (!parsed || JSON.stringify(done.fields['families']) !== '["ipv4:applied"]') throw new Error(`swap ${i} did not apply: ${done.raw}`);
      total.push(done.time - swappedAt);
      afterParse.push(done.time - parsed.time);
    }
    // A quiet resync at this size: SIGHUP syncs at once; the config is unchanged, so this is the read-back and compare.
    const quiet: number[] = [];
    for (let i = 0; i < 3; i++) {
      const mark = node.agent.mark();
      // From the signal, not from its log line: SIGHUPs within a second of one another share a line.
      const sent = Date.now();
      node.agent.signal('SIGHUP');
      const done = await node.agent.waitForLog(isSyncDone('SIGHUP'), { since: mark, timeoutMs: 120_000 });
      quiet.push(done.time - sent);
    }
    const rss = rssKiB(node.agent.pid);
    await node.agent.stop();
    // The kernel holds texts[swaps % 2]; the raw tool swaps the other way first, as the agent did.
    const scripts = await Promise.all(texts.map(async (t) => backend.render(await policyFor(t, backend.flags))));
    const order = Array.from({ length: swaps }, (_, i) => scripts[(swaps + 1 + i) % 2]!);
    const raw = median(rawApplyMs(node, backend.raw, order));
    console.log(
      `  swap incl. parse: median ${fmt(median(total))} ms; after parse ${afterParse.map(fmt).join(', ')} ms; quiet resync ${quiet.map(fmt).join(', ')} ms; RSS ${(rss / 1024).toFixed(0)} MiB`,
    );
    reportTarget({
      name: `${n.toLocaleString('en')}-CIDR swap after the parse (normalise, render, apply, jump), ${backend.name}`,
      measured: median(afterParse),
      limit: 1.5 * raw,
      unit: 'ms',
      baseline: `1.5x raw \`${backend.raw.join(' ')}\` of the same script: ${fmt(raw)} ms median of ${order.length}`,
    });
  } finally {
    await node.close();
  }
}

/** The agent's own logger (JSON, --v=2) writing to /dev/null, so logging is part of what is measured. */
function nullLogger(): Logger {
  const fd = openSync('/dev/null', 'w');
  return createLogger(2, (line) => writeSync(fd, line));
}

async function benchMemory(resyncs: number, swaps: number): Promise<void> {
  console.log(`\n[mem] ${resyncs.toLocaleString('en')} resyncs and ${swaps.toLocaleString('en')} config swaps, an agent in this process (fake clock, iptables-nft in a namespace, 64 CIDRs)`);
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const ns = createNamespace('rs-mem');
  const cm = createConfigMapDir();
  const lock = createPrivateLock();
  const savedLock = process.env['XTABLES_LOCKFILE'];
  process.env['XTABLES_LOCKFILE'] = lock.file;
  try {
    const texts = [configText(cidrs(64), '1h'), configText([...cidrs(64), '198.51.100.0/24'], '1h')] as const;
    cm.write(texts[0]);
    const opts = agentOptionsFromFlags(parseFlags(['--iptables-mode=nft']));
    const cache = new ParseCache();
    const metrics = createMetrics();
    const runner = createRunner();
    const agent = createAgent({
      loadConfig: () => loadConfig(cm.file, opts.config, 'file', cache),
      defaultConfig: () => {
        throw new Error('the bench config is valid');
      },
      // The runner as the agent makes it.
      backend: createIptablesBackend({ runner: netnsRunner(ns, runner), mode: 'nft', chain: CHAIN, randomFullySupported: true }),
      policyOptions: opts.policy,
      log: nullLogger(),
      clock: createFakeClock(),
      onSync: (r) => metrics.onSync(r),
    });
    await agent.start();
    let written = 0;
    let swapped = 0;
    const run = async (count: number, swapEvery: number, swapLimit: number): Promise<void> => {
      for (let i = 1; i <= count; i++) {
        const r = await agent.sync('resync');
        if (r.families.some((f) => f.result !== 'unchanged')) throw new Error(`resync ${i} not quiet: ${JSON.stringify(r.families)}`);
        if (i % swapEvery === 0 && swapped < swapLimit) {
          swapped++;
          cm.write(texts[++written % 2]!);
          const s = await agent.sync('config changed');
          if (s.families.some((f) => f.result !== 'applied')) throw new Error(`swap ${swapped} not applied: ${JSON.stringify(s.families)}`);
          // Scraped as Prometheus would, so the metrics' own buffers are part of the picture.
          metrics.update(agent.status());
          await metrics.registry.metrics();
        }
      }
    };
    const every = Math.max(1, Math.floor(resyncs / Math.max(1, swaps)));
    // Warm-up: JIT, caches, first allocations of every path (the heap settles within about 1,000 syncs).
    await run(Math.max(1000, Math.ceil(resyncs / 10)), every, Math.max(200, Math.ceil(swaps / 10)));
    const settle = (): { heap: number; rss: number } => {
      for (let i = 0; i < 3; i++) gc();
      return { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
    };
    const before = settle();
    swapped = 0;
    const t0 = performance.now();
    await run(resyncs, every, swaps);
    const after = settle();
    await agent.stop();
    runner.killAll();
    const mib = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;
    console.log(
      `  ${resyncs} resyncs, ${swapped} swaps in ${((performance.now() - t0) / 1000).toFixed(0)} s; heap ${mib(before.heap)} -> ${mib(after.heap)}, RSS ${mib(before.rss)} -> ${mib(after.rss)}`,
    );
    reportTarget({
      name: `heap after GC, growth over ${resyncs} resyncs and ${swapped} swaps`,
      measured: ((after.heap - before.heap) / before.heap) * 100,
      limit: 5,
      unit: '%',
      baseline: `fixed; before ${mib(before.heap)}, after ${mib(after.heap)}`,
    });
    reportTarget({
      name: `RSS, growth over ${resyncs} resyncs and ${swapped} swaps`,
      measured: ((after.rss - before.rss) / before.rss) * 100,
      limit: 5,
      unit: '%',
      baseline: `fixed; before ${mib(before.rss)}, after ${mib(after.rss)}`,
    });
  } finally {
    if (savedLock === undefined) delete process.env['XTABLES_LOCKFILE'];
    else process.env['XTABLES_LOCKFILE'] = savedLock;
    deleteNamespace(ns);
    cm.cleanup();
    lock.cleanup();
  }
}

async function main(): Promise<void> {
  if (!canUseNetns()) {
    console.error('needs root and iproute2 (network namespaces)');
    process.exitCode = 1;
    return;
  }
  console.log(`resync benchmarks: node ${process.version}, ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} CPUs`);
  if (sections.has('cpu')) for (const n of (args.get('sizes') ?? '64,10000').split(',').map(Number)) await benchCpu(n, num('seconds', 60), args.get('resync') ?? '1s');
  if (sections.has('swap')) await benchSwap();
  const bigBackends = (args.get('big-backends') ?? BIG_BACKENDS.map((b) => b.name).join(',')).split(',');
  if (sections.has('big')) for (const b of BIG_BACKENDS.filter((x) => bigBackends.includes(x.name))) await benchBig(b, num('big-swaps', 3), num('big-cidrs', 50_000));
  if (sections.has('mem')) await benchMemory(num('resyncs', 10_000), num('swaps', 2_000));
  printTargetSummary();
}

main().catch((e: unknown) => {
  console.error(`bench failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
});
