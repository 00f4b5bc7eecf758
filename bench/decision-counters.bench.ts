// What connections per decision cost (issue 20, point 1), not part of the test suite:
//
//   npx tsc -p tsconfig.json && sudo node dist/bench/decision-counters.bench.js [--runs=5] [--flows=20000]
//
// Needs root. Everything runs in namespaces this script creates and deletes.
// 1. One counter read (the backend's counters(): the command and the parse), at 64 and 10,000
//    non-masquerade CIDRs, on iptables-nft, iptables-legacy and nftables; wall time and CPU (the
//    command's, as reaped children, plus this process's parse), median of `runs`, against the
//    backend's own read() of the same family in the same run (what every resync already does).
// 2. The per-packet cost of nft counters: a pod sends `flows` new UDP flows (one datagram each, to
//    distinct ports) through the node, which masquerades them with our table loaded with the
//    counters and without them (the same script, `counter` removed), alternating, `runs` rounds.
//    A nat chain sees only a connection's first packet, so this is the cost per new connection.
//    The sender's CPU includes the node's forwarding (veth hands packets on in the sender's
//    softirq). The figures are printed, never asserted.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuTicks } from '../test/agent/agent-process.js';
import { ADDR, canUseNetns, createNamespace, createTopology, deleteNamespace, nsRun } from '../test/netns/netns.js';
import { netnsRunner } from '../test/netns/netns-runner.js';
import { exempt } from '../test/backends/iptables-helpers.js';
import type { Backend } from '../src/backends/backend.js';
import { applyPolicy } from '../test/backends/sync.js';
import { createIptablesBackend } from '../src/backends/iptables/iptables-backend.js';
import { createNftablesBackend } from '../src/backends/nftables/nftables-backend.js';
import { renderNftScript } from '../src/backends/nftables/render.js';
import type { Runner } from '../src/exec/runner.js';
import type { FamilyPolicy } from '../src/policy/types.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const RUNS = Number(args.get('runs') ?? 5);
const FLOWS = Number(args.get('flows') ?? 20_000);
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const CHAIN = 'IP-MASQ-AGENT';
const lockDir = mkdtempSync(join(tmpdir(), 'ima-cnt-bench-'));

/** `n` disjoint /24s (every other one, so nft keeps them as `n` elements instead of merging them). */
function policyOf(n: number): FamilyPolicy {
  const cidrs = Array.from({ length: n }, (_, i) => `10.${(2 * i) >> 8}.${(2 * i) & 255}.0/24`);
  return { family: 'ipv4', exempt: [exempt('169.254.0.0/16', 'link-local'), ...cidrs.map((c) => exempt(c))], randomFully: true, toPorts: [] };
}

/** Wall and CPU milliseconds of `fn`: this process's (the parse) and its reaped children's (the command). */
async function timed(fn: () => Promise<unknown>): Promise<{ ms: number; cpuMs: number }> {
  const [cpu0, own0, t0] = [cpuTicks(process.pid).children, process.cpuUsage(), performance.now()];
  await fn();
  const own = process.cpuUsage(own0);
  return { ms: performance.now() - t0, cpuMs: ((cpuTicks(process.pid).children - cpu0) * 1000) / CLK_TCK + (own.user + own.system) / 1000 };
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function runnerIn(ns: string): Runner {
  const run = netnsRunner(ns);
  return (argv, o = {}) => run(argv, { ...o, env: { ...o.env, XTABLES_LOCKFILE: join(lockDir, 'xtables.lock') } });
}

async function readCost(): Promise<void> {
  console.log(`1. one counter read against the backend's own read() of the family, median of ${RUNS}`);
  const backends: [string, (r: Runner) => Backend][] = [
    ['iptables-nft', (runner) => createIptablesBackend({ runner, mode: 'nft', chain: CHAIN, randomFullySupported: true })],
    ['iptables-legacy', (runner) => createIptablesBackend({ runner, mode: 'legacy', chain: CHAIN, randomFullySupported: true })],
    ['nftables', (runner) => createNftablesBackend(runner)],
  ];
  for (const n of [64, 10_000]) {
    for (const [name, make] of backends) {
      const ns = createNamespace('cntb');
      try {
        const run = runnerIn(ns);
        const backend = make(run);
        const policy = policyOf(n);
        await applyPolicy(backend, policy);
        const [read, counts] = [
          { ms: [] as number[], cpuMs: [] as number[] },
          { ms: [] as number[], cpuMs: [] as number[] },
        ];
        let rows = 0;
        for (let i = 0; i < RUNS; i++) {
          const a = await timed(() => backend.read('ipv4'));
          const b = await timed(async () => (rows = (await backend.counters?.([policy]))?.length ?? 0));
          read.ms.push(a.ms);
          read.cpuMs.push(a.cpuMs);
          counts.ms.push(b.ms);
          counts.cpuMs.push(b.cpuMs);
        }
        const [rm, cm] = [median(read.ms), median(counts.ms)];
        console.log(
          `  ${String(n).padStart(6)} CIDRs ${name.padEnd(16)} counters ${cm.toFixed(1).padStart(7)} ms wall ${median(counts.cpuMs).toFixed(0).padStart(5)} ms CPU (${rows} counts)   read() ${rm.toFixed(1).padStart(7)} ms wall ${median(read.cpuMs).toFixed(0).padStart(5)} ms CPU   ratio ${(cm / rm).toFixed(2)}`,
        );
      } finally {
        deleteNamespace(ns);
      }
    }
  }
}

// One socket, one datagram to each of `n` ports: `n` new connections. Prints its own wall and CPU.
const SEND_JS = `
const u = require('node:dgram').createSocket('udp4');
const [host, n] = [process.argv[1], Number(process.argv[2])];
let port = 1;
let t0, c0;
const burst = () => {
  for (let i = 0; i < 100 && port <= n; i++) u.send('x', port++, host);
  if (port <= n) setImmediate(burst);
  else setTimeout(() => { const c = process.cpuUsage(c0); console.log(JSON.stringify({ ms: performance.now() - t0 - 100, cpuMs: (c.user + c.system) / 1000 })); process.exit(0); }, 100);
};
u.bind(40000, () => { t0 = performance.now(); c0 = process.cpuUsage(); burst(); });
`;

async function packetCost(): Promise<void> {
  const topo = createTopology();
  try {
    const policy = policyOf(64);
    const counted = renderNftScript([policy]);
    const plain = counted.replace(/ counter;/g, '').replace(/ counter /g, ' ');
    const rows: Record<string, { us: number[]; cpuUs: number[]; seen: number[] }> = {};
    for (let i = 0; i < RUNS; i++) {
      // Alternating, and the other order every second round, so drift in the machine's load hits both.
      const order = i % 2 === 0 ? (['without', 'with'] as const) : (['with', 'without'] as const);
      for (const variant of order) {
        nsRun(topo.node, ['nft', 'flush', 'ruleset']);
        nsRun(topo.node, ['nft', '-f', '-'], variant === 'with' ? counted : plain);
        nsRun(topo.node, ['conntrack', '-F'], '');
        const r = JSON.parse(nsRun(topo.pod, [process.execPath, '-e', SEND_JS, ADDR.outside4, String(FLOWS)])) as { ms: number; cpuMs: number };
        const seen = Number(nsRun(topo.node, ['cat', '/proc/sys/net/netfilter/nf_conntrack_count']).trim());
        const row = (rows[variant] ??= { us: [], cpuUs: [], seen: [] });
        row.us.push((r.ms * 1000) / FLOWS);
        row.cpuUs.push((r.cpuMs * 1000) / FLOWS);
        row.seen.push(seen);
      }
    }
    console.log(`\n2. per new connection through the node, nftables, 64 CIDRs, ${FLOWS} flows x ${RUNS} rounds (median, min-max)`);
    const fmt = (xs: number[]): string => `${median(xs).toFixed(2)} us (${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)})`;
    for (const [name, r] of Object.entries(rows)) {
      console.log(`  ${name.padEnd(8)} counters: wall ${fmt(r.us)}  sender CPU ${fmt(r.cpuUs)}  conntrack entries ${median(r.seen)}`);
    }
    const [a, b] = [rows['without']!, rows['with']!];
    console.log(`  difference (with - without): wall ${(median(b.us) - median(a.us)).toFixed(3)} us, CPU ${(median(b.cpuUs) - median(a.cpuUs)).toFixed(3)} us per connection`);
  } finally {
    topo.cleanup();
  }
}

async function main(): Promise<void> {
  if (!canUseNetns()) throw new Error('needs root and iproute2');
  try {
    await readCost();
    await packetCost();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

await main();
