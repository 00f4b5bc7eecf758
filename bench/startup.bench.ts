// Start-up time and idle memory of the agent process (issue 11), not part of the test suite.
//
//   npm run build && sudo node dist/bench/startup.bench.js [--rounds=7] [--idle-seconds=120]
//       [--agent=PATH] [--before=PATH] [--node-options=...] [--sections=1,2,3]
//
// Needs root (network namespaces). Every process, the baselines included, runs inside a namespace
// this script creates and deletes (iptables-nft, private xtables lock); nothing touches the host's
// netfilter state. The agent is the shipped bundle (dist/bin/ip-masq-agent.js; --agent= runs another
// build, e.g. an older one for a before/after) with the image's NODE_OPTIONS (read from the
// Dockerfile; --node-options= overrides), HTTP endpoints on, as deployed. --before= names an older
// build (a bundle copied aside with its package.json two levels up) that sections 1 and 2 run in
// the same rounds, so a before/after comes from one run. Baselines come from the same run,
// interleaved with the agent's runs, so a busy machine slows both alike:
//   1. start -> rules in the kernel (64 CIDRs), against a bare `node` that prints and exits
//   2. `--version`: wall time and peak RSS, against `node -e 0` (peak RSS needs GNU time)
//   3. resident memory idle (default config, resyncInterval 1s), 2 s after the rules and
//      --idle-seconds later, against `node -e 'setInterval(()=>{},1e3)'` at the same moments
// Prints every target with `reportTarget` (bench/targets.ts); nothing is asserted.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canUseNetns, createNamespace, deleteNamespace } from '../test/netns/netns.js';
import { AGENT_MAIN, cpuTicks, rssKiB } from '../test/agent/agent-process.js';
import { imageNodeOptions, startBenchNode, type BenchNode } from './bench-node.js';
import { printTargetSummary, reportTarget } from './targets.js';

const arg = (name: string, fallback: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const ROUNDS = Number(arg('rounds', '7'));
const IDLE_SECONDS = Number(arg('idle-seconds', '120'));
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const GNU_TIME = '/usr/bin/time';

const NODE_OPTIONS = arg('node-options', imageNodeOptions());
const AGENT = arg('agent', AGENT_MAIN);
const BEFORE = arg('before', '');
const SECTIONS = new Set(arg('sections', '1,2,3').split(','));
/** The builds measured in sections 1 and 2: the older one (--before=) first, then the agent. */
const BUILDS: readonly { label: string; path: string }[] = [...(BEFORE ? [{ label: 'before: ', path: BEFORE }] : []), { label: '', path: AGENT }];

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : ((s[(s.length - 1) >> 1] ?? 0) + (s[s.length >> 1] ?? 0)) / 2;
};
const mib = (kib: number): number => kib / 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function configText(cidrs: number, resync: string): string {
  const list = Array.from({ length: cidrs }, (_, i) => `  - 10.244.${i}.0/24\n`).join('');
  return `${cidrs > 0 ? `nonMasqueradeCIDRs:\n${list}` : ''}resyncInterval: ${resync}\n`;
}

/** An agent (iptables-nft, HTTP on) on `text` in a fresh namespace; another build is exec'd in AGENT_MAIN's place through a shell prefix. */
function startNode(role: string, text: string, agent = AGENT): BenchNode {
  const prefix = agent === AGENT_MAIN ? undefined : ['sh', '-c', 'node=$1; shift 2; exec "$node" "$0" "$@"', agent];
  return startBenchNode(role, text, { flags: ['--iptables-mode=nft'], nodeOptions: NODE_OPTIONS, ...(prefix ? { prefix } : {}) });
}

/** Wall time of `node -e "console.log('started')"` in a fresh namespace, spawn to exit. */
async function bareNodeStartMs(): Promise<number> {
  const ns = createNamespace('bench-bare');
  try {
    const started = Date.now();
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', "console.log('started')"], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS } });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    if (code !== 0) throw new Error(`bare node exited ${code}`);
    return Date.now() - started;
  } finally {
    deleteNamespace(ns);
  }
}

async function benchStart(): Promise<void> {
  console.log(`\n[1] start -> rules in the kernel, 64 CIDRs, iptables-nft (${ROUNDS} rounds, interleaved with a bare node start${BEFORE ? ' and the --before build' : ''})`);
  const bare: number[] = [];
  const runs = BUILDS.map((b) => ({ ...b, agent: [] as number[], loaded: [] as number[] }));
  for (let i = 0; i < ROUNDS; i++) {
    bare.push(await bareNodeStartMs());
    // Alternate which build goes first, so neither always runs right after the bare node.
    for (const run of i % 2 === 0 ? runs : [...runs].reverse()) {
      const node = startNode('bench-up', configText(64, '1h'), run.path);
      try {
        // Logged once the last command of the first sync (the jump) has returned.
        const applied = await node.agent.waitForLog('rules applied', { timeoutMs: 30_000 });
        run.agent.push(applied.time - node.spawnedAt);
        const first = node.agent.logs[0];
        if (first) run.loaded.push(first.time - node.spawnedAt);
      } finally {
        await node.close();
      }
    }
  }
  console.log(`  bare node: median ${median(bare).toFixed(0)} ms (${bare.join(', ')})`);
  for (const run of runs) {
    console.log(`  ${run.label || 'agent: '}${run.agent.join(', ')}; first log line (code loaded) median ${median(run.loaded).toFixed(0)} ms`);
  }
  for (const run of runs) {
    reportTarget({
      name: `${run.label}start to rules in the kernel, N=64, iptables-nft`,
      measured: median(run.agent),
      limit: 2 * median(bare),
      unit: 'ms',
      baseline: `2x bare node start, ${median(bare).toFixed(0)} ms`,
    });
  }
}

/** Wall ms and peak RSS (KiB, from GNU time; NaN without it) of argv run to exit in namespace ns. */
function runTimed(ns: string, argv: readonly string[]): { ms: number; peakKiB: number } {
  const out = join(work, 'time.out');
  const timed = existsSync(GNU_TIME) ? [GNU_TIME, '-o', out, '-f', '%M'] : [];
  const [cmd = 'ip', ...rest] = [...timed, 'ip', 'netns', 'exec', ns, ...argv];
  const started = performance.now();
  const r = spawnSync(cmd, rest, {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, NODE_OPTIONS },
  });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  const peakKiB = timed.length > 0 ? Number(readFileSync(out, 'utf8').trim().split('\n').pop()) : Number.NaN;
  return { ms, peakKiB };
}

async function benchVersion(): Promise<void> {
  const rounds = ROUNDS * 2;
  console.log(`\n[2] --version against node -e 0 (${rounds} rounds, interleaved)`);
  const ns = createNamespace('bench-version');
  try {
    const base = { ms: [] as number[], kib: [] as number[] };
    const runs = BUILDS.map((b) => ({ ...b, ms: [] as number[], kib: [] as number[] }));
    for (let i = 0; i < rounds; i++) {
      const b = runTimed(ns, [process.execPath, '-e', '0']);
      base.ms.push(b.ms);
      base.kib.push(b.peakKiB);
      for (const run of runs) {
        const o = runTimed(ns, [process.execPath, run.path, '--version']);
        run.ms.push(o.ms);
        run.kib.push(o.peakKiB);
      }
    }
    for (const run of runs) {
      reportTarget({ name: `${run.label}--version, wall time`, measured: median(run.ms), limit: 2 * median(base.ms), unit: 'ms', baseline: `2x node -e 0, ${median(base.ms).toFixed(0)} ms` });
      if (existsSync(GNU_TIME)) {
        const floor = mib(median(base.kib));
        reportTarget({ name: `${run.label}--version, peak RSS`, measured: mib(median(run.kib)), limit: floor + 10, unit: 'MiB', baseline: `node -e 0 + 10 MiB, ${floor.toFixed(1)} MiB` });
      }
    }
    if (!existsSync(GNU_TIME)) console.log(`  peak RSS not measured: ${GNU_TIME} (GNU time, apt package "time") is not installed`);
  } finally {
    deleteNamespace(ns);
  }
}

async function benchIdle(): Promise<void> {
  console.log(`\n[3] resident memory idle: default config, resyncInterval 1s, HTTP on; 2 s after the rules and ${IDLE_SECONDS} s later`);
  const floorNs = createNamespace('bench-floor');
  const floor = spawn('ip', ['netns', 'exec', floorNs, process.execPath, '-e', 'setInterval(()=>{},1e3)'], { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS } });
  const node = startNode('bench-idle', configText(0, '1s'));
  try {
    const applied = await node.agent.waitForLog('rules applied', { timeoutMs: 30_000 });
    await sleep(2000);
    const pid = node.agent.pid;
    if (floor.pid === undefined) throw new Error('the floor process did not start');
    const agent2s = rssKiB(pid);
    const floor2s = rssKiB(floor.pid);
    const cpu0 = cpuTicks(pid);
    const t0 = performance.now();
    reportTarget({
      name: 'resident memory idle, 2 s after the rules',
      measured: mib(agent2s),
      limit: 50,
      unit: 'MiB',
      baseline: `fixed; node -e 'setInterval(()=>{},1e3)' ${mib(floor2s).toFixed(1)} MiB`,
    });
    await sleep(IDLE_SECONDS * 1000);
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = cpuTicks(pid);
    const agentLater = rssKiB(pid);
    const floorLater = rssKiB(floor.pid);
    const peak = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
    const resyncs = node.agent.matching((l) => l.msg === 'sync done' && l.fields['reason'] === 'resync', node.agent.logs.indexOf(applied)).length;
    reportTarget({
      name: `resident memory after ${IDLE_SECONDS} s at a 1 s resync`,
      measured: mib(agentLater),
      limit: 50,
      unit: 'MiB',
      baseline: `fixed; node -e 'setInterval(()=>{},1e3)' ${mib(floorLater).toFixed(1)} MiB`,
    });
    const own = (cpu1.self - cpu0.self) / CLK_TCK;
    const children = (cpu1.children - cpu0.children) / CLK_TCK;
    console.log(`  ${resyncs} resyncs; peak RSS (VmHWM) ${mib(peak).toFixed(1)} MiB; CPU in ${seconds.toFixed(0)} s: agent ${own.toFixed(2)} s, its iptables children ${children.toFixed(2)} s`);
  } finally {
    floor.kill('SIGKILL');
    await node.close();
    deleteNamespace(floorNs);
  }
}

let work = '';

async function main(): Promise<void> {
  if (!canUseNetns()) {
    console.error('needs root and iproute2 (network namespaces)');
    process.exitCode = 1;
    return;
  }
  work = mkdtempSync(join(tmpdir(), 'ima-bench-startup-'));
  try {
    console.log(
      `start-up and idle memory: node ${process.version}, ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} CPUs, agent ${AGENT}${BEFORE ? `, before ${BEFORE}` : ''}, NODE_OPTIONS=${NODE_OPTIONS || '(none)'}`,
    );
    if (SECTIONS.has('1')) await benchStart();
    if (SECTIONS.has('2')) await benchVersion();
    if (SECTIONS.has('3')) await benchIdle();
    const missed = printTargetSummary();
    console.log(missed === 0 ? '\nall targets met' : `\n${missed} target(s) missed`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`bench failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
});
