// Benchmarks of the agent PROCESS (issue 3), not part of the test suite.
//
//   npx tsc -p tsconfig.json && sudo node dist/bench/agent.bench.js
//
// Needs root (network namespaces). Every agent runs inside a namespace this script creates and
// deletes (iptables-nft, private xtables lock); nothing touches the host's netfilter state.
// Measures, in one run, so ratios compare like with like on this (noisy) machine:
//   1. start -> "rules applied" (process spawn to the first rules in place), median of 5 starts
//   2. kubelet-style ..data swap -> "rules applied", p50/p99 over 100 swaps alternating two configs
//   3. one quiet resync (config read + parse + read-back + compare) at 64 and 10,000 CIDRs, versus
//      the raw commands it cannot avoid (`iptables-nft -t nat -S CHAIN` + `-C POSTROUTING ...`)
//      timed inside the same namespace (ratio)
//   4. steady-state CPU over 60 s at resyncInterval 1s (64 CIDRs), own and with children
//   5. RSS after start (64 CIDRs) and with 10,000 CIDRs
// The agents run with --v=2 (one debug line per sync, used for timing) and /healthz, /metrics on.
// All waits are bounded; the figures are printed, never asserted.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { canUseNetns, createNamespace, deleteNamespace } from '../test/netns/netns.js';
import {
  cpuTicks,
  createConfigMapDir,
  createPrivateLock,
  rssKiB,
  startAgent,
  type AgentProcess,
  type ConfigMapDir,
} from '../test/agent/agent-process.js';
import { JUMP_SPEC } from '../test/agent/agent-scene.js';

const CHAIN = 'IP-MASQ-AGENT';
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** n disjoint blocks inside 10.244.0.0/16: /24s up to 256 of them, else /30s (up to 16,384). */
function cidrs(n: number): string[] {
  if (n <= 256) return Array.from({ length: n }, (_, i) => `10.244.${i}.0/24`);
  if (n > 16_384) throw new Error('at most 16384 /30 blocks fit in 10.244.0.0/16');
  return Array.from({ length: n }, (_, i) => `10.244.${i >> 6}.${(i & 63) << 2}/30`);
}

function configText(list: readonly string[], resync: string): string {
  return `nonMasqueradeCIDRs:\n${list.map((c) => `  - ${c}\n`).join('')}cidrLimit: ${Math.max(64, list.length)}\nresyncInterval: ${resync}\n`;
}

function median(xs: readonly number[]): number {
  return percentile(xs, 0.5);
}

/** Nearest-rank percentile. */
function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? Number.NaN;
}

const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

interface Row {
  readonly what: string;
  readonly value: string;
  readonly note: string;
}
const rows: Row[] = [];
function report(what: string, value: string, note = ''): void {
  rows.push({ what, value, note });
  console.log(`  ${what}: ${value}${note ? `  (${note})` : ''}`);
}

/** A node namespace, a ConfigMap dir and a running agent, torn down by `close`. */
interface Node {
  readonly ns: string;
  readonly cm: ConfigMapDir;
  readonly agent: AgentProcess;
  readonly spawnedAt: number;
  close(): Promise<void>;
}

async function startNode(role: string, text: string): Promise<Node> {
  const ns = createNamespace(role);
  const cm = createConfigMapDir();
  const lock = createPrivateLock();
  cm.write(text);
  const spawnedAt = Date.now();
  // The HTTP endpoints on, at their default addresses (the namespace's own loopback), as deployed.
  const http = ['--healthz-bind-address=127.0.0.1:10264', '--metrics-bind-address=127.0.0.1:10265'];
  const agent = startAgent(ns, [`--config=${cm.file}`, '--iptables-mode=nft', '--v=2', ...http], { env: lock.env });
  return {
    ns,
    cm,
    agent,
    spawnedAt,
    close: async () => {
      await agent.kill();
      deleteNamespace(ns);
      cm.cleanup();
      lock.cleanup();
    },
  };
}

/** The agent's pid must be the node process itself (`ip netns exec` execs it), or /proc figures lie. */
function assertIsNode(pid: number): void {
  const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  if (cmd !== process.execPath) throw new Error(`pid ${pid} runs ${cmd}, not node`);
}

async function benchStart(): Promise<void> {
  console.log('\n[1] start -> rules applied (5 fresh namespaces, 64 CIDRs)');
  const total: number[] = [];
  const afterUp: number[] = [];
  for (let i = 0; i < 5; i++) {
    const node = await startNode('bench-start', configText(cidrs(64), '1h'));
    try {
      const applied = await node.agent.waitForLog('rules applied', { timeoutMs: 30_000 });
      const first = node.agent.logs[0];
      total.push(applied.time - node.spawnedAt);
      if (first) afterUp.push(applied.time - first.time);
    } finally {
      await node.close();
    }
  }
  report('start -> rules applied, median of 5', `${fmt(median(total))} ms`, `min ${fmt(Math.min(...total))}, max ${fmt(Math.max(...total))}; of which after the first log line: ${fmt(median(afterUp))} ms`);
}

async function benchSwaps(): Promise<void> {
  console.log('\n[2] kubelet-style ..data swap -> rules applied (100 swaps, resyncInterval 1h)');
  const a = configText(['10.244.0.0/16'], '1h');
  const b = configText(['10.244.0.0/16', '198.51.100.0/24'], '1h');
  const node = await startNode('bench-swap', a);
  try {
    await node.agent.waitForLog('sync done', { timeoutMs: 30_000 });
    const lat: number[] = [];
    for (let i = 0; i < 100; i++) {
      const mark = node.agent.mark();
      const swappedAt = node.cm.write(i % 2 === 0 ? b : a);
      const applied = await node.agent.waitForLog('rules applied', { since: mark, timeoutMs: 10_000 });
      lat.push(applied.time - swappedAt);
      await node.agent.waitForLog('sync done', { since: node.agent.logs.indexOf(applied), timeoutMs: 10_000 });
    }
    report('swap -> rules applied, p50', `${fmt(percentile(lat, 0.5))} ms`, 'includes the 50 ms watch debounce');
    report('swap -> rules applied, p99', `${fmt(percentile(lat, 0.99))} ms`, `max ${fmt(Math.max(...lat))} ms, n=${lat.length}`);
    const resyncs = node.agent.matching((l) => l.msg === 'sync done' && l.fields['reason'] === 'resync').length;
    report('  resyncs during the swaps', String(resyncs), 'should be 0 at resyncInterval 1h: the watch did it');
  } finally {
    await node.close();
  }
}

// Runs inside the namespace: times `-S CHAIN` and `-C POSTROUTING <jump>` as the agent runs them
// (one process each), `iterations` times, and prints the per-pair milliseconds as JSON.
const RAW_SCRIPT = `
const { spawnSync } = require('node:child_process');
const [iterations, chain, ...jump] = process.argv.slice(1);
const out = [];
for (let i = 0; i < Number(iterations); i++) {
  const t = process.hrtime.bigint();
  const s = spawnSync('iptables-nft', ['-w', '5', '-t', 'nat', '-S', chain], { maxBuffer: 1 << 28 });
  const c = spawnSync('iptables-nft', ['-w', '5', '-t', 'nat', '-C', 'POSTROUTING', ...jump]);
  if (s.status !== 0 || c.status !== 0) { process.stderr.write(String(s.stderr) + String(c.stderr)); process.exit(1); }
  out.push(Number(process.hrtime.bigint() - t) / 1e6);
}
process.stdout.write(JSON.stringify(out));
`;

function rawReadBack(ns: string, iterations: number): number[] {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', RAW_SCRIPT, String(iterations), CHAIN, ...JUMP_SPEC], {
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`raw read-back failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as number[];
}

/**
 * One quiet resync from outside the process: the timer is re-armed when a sync ends, so
 * consecutive "sync done" stamps are resyncInterval + one sync apart.
 */
async function benchResync(n: number, resyncMs: number, samples: number): Promise<{ syncMs: number; rawMs: number; rss: number }> {
  const node = await startNode(`bench-rs${n}`, configText(cidrs(n), `${resyncMs}ms`));
  try {
    const applied = await node.agent.waitForLog('rules applied', { timeoutMs: 120_000 });
    const rules = applied.fields['rules'];
    const ruleCount = Array.isArray(rules) ? `${rules.length} lines` : String(rules);
    const from = node.agent.logs.indexOf(applied);
    const quiet = (): number => node.agent.matching((l) => l.msg === 'sync done' && l.fields['reason'] === 'resync', from).length;
    const deadline = Date.now() + 300_000;
    while (quiet() < samples + 1) {
      if (Date.now() > deadline) throw new Error(`only ${quiet()} resyncs at ${n} CIDRs`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const done = node.agent.matching((l) => l.msg === 'sync done' && l.fields['reason'] === 'resync', from);
    const unchanged = done.every((l) => JSON.stringify(l.fields['families']) === '["ipv4:unchanged"]');
    if (!unchanged) throw new Error(`a resync at ${n} CIDRs was not quiet: ${done.map((l) => l.raw).join('\n')}`);
    const gaps = done.slice(1).map((l, i) => l.time - (done[i]?.time ?? 0) - resyncMs);
    assertIsNode(node.agent.pid);
    const rss = rssKiB(node.agent.pid);
    // Raw commands with the agent stopped (rules stay), so the two do not compete for the CPUs.
    await node.agent.stop();
    const raw = rawReadBack(node.ns, samples);
    const syncMs = median(gaps);
    const rawMs = median(raw);
    report(`quiet resync, ${n} CIDRs (${ruleCount})`, `${fmt(syncMs)} ms`, `median of ${gaps.length}; raw -S + -C: ${fmt(rawMs)} ms; ratio ${(syncMs / rawMs).toFixed(2)}x`);
    return { syncMs, rawMs, rss };
  } finally {
    await node.close();
  }
}

async function benchCpu(): Promise<void> {
  console.log('\n[4] steady state: 60 s at resyncInterval 1s, 64 CIDRs');
  const node = await startNode('bench-cpu', configText(cidrs(64), '1s'));
  try {
    await node.agent.waitForLog('sync done', { timeoutMs: 30_000 });
    assertIsNode(node.agent.pid);
    const rssStart = rssKiB(node.agent.pid);
    const stat0 = cpuTicks(node.agent.pid);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 60_000));
    const seconds = (performance.now() - t0) / 1000;
    const stat1 = cpuTicks(node.agent.pid);
    const own = (stat1.self - stat0.self) / CLK_TCK;
    const children = (stat1.children - stat0.children) / CLK_TCK;
    const syncs = node.agent.matching((l) => l.msg === 'sync done' && l.fields['reason'] === 'resync').length;
    report('CPU, agent process', `${((own / seconds) * 100).toFixed(2)} % of one CPU`, `${own.toFixed(2)} s in ${seconds.toFixed(0)} s, ${syncs} resyncs`);
    report('CPU, agent + iptables children', `${(((own + children) / seconds) * 100).toFixed(2)} % of one CPU`, `children ${children.toFixed(2)} s`);
    report('RSS after start (64 CIDRs)', `${(rssStart / 1024).toFixed(1)} MiB`);
    report('RSS after 60 s (64 CIDRs)', `${(rssKiB(node.agent.pid) / 1024).toFixed(1)} MiB`);
  } finally {
    await node.close();
  }
}

async function main(): Promise<void> {
  if (!canUseNetns()) {
    console.error('needs root and iproute2 (network namespaces)');
    process.exitCode = 1;
    return;
  }
  console.log(`agent process benchmarks: node ${process.version}, ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} CPUs, iptables-nft`);
  await benchStart();
  await benchSwaps();
  console.log('\n[3] one quiet resync vs the raw read-back commands');
  await benchResync(64, 100, 30);
  const big = await benchResync(10_000, 500, 15);
  report('RSS with 10,000 CIDRs', `${(big.rss / 1024).toFixed(1)} MiB`);
  await benchCpu();

  console.log('\n| measurement | value | notes |\n|---|---|---|');
  for (const r of rows) console.log(`| ${r.what.trim()} | ${r.value} | ${r.note} |`);
}

main().catch((e: unknown) => {
  console.error(`bench failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
});
