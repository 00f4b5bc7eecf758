// What deleting stale NAT entries costs (issue 20, point 2), not part of the test suite:
//
//   npx tsc -p tsconfig.json && sudo node dist/bench/conntrack.bench.js [--flows=10000] [--runs=3]
//
// Needs root and conntrack. A pod/node/outside topology in namespaces this script creates and
// deletes; the node masquerades everything (iptables-nft, inside its namespace). The pod opens
// `flows` UDP flows (one socket, one datagram to each of `flows` ports of 198.51.100.10), so the
// node's table holds that many SNATed entries. Then, each timed as wall clock and CPU of the
// commands (ip netns exec + conntrack, reaped children of this process), median of `runs`:
//   baseline  `conntrack -L -p udp`: one walk of the whole table through the tool
//   none      deleteStaleFlows for one changed block covering none of the flows (udp + icmp)
//   bound     the same for MAX_CHANGED_BLOCKS such blocks: the most one call runs unwidened
//   all       deleteStaleFlows for the change that covers them all (an exemption added for
//             198.51.100.0/24: --src-nat entries), with the count it deleted
// The figures are printed, never asserted.
import { cpuTicks } from '../test/agent/agent-process.js';
import { ADDR, canUseNetns, createTopology, nsRun, type Topology } from '../test/netns/netns.js';
import { netnsRunner } from '../test/netns/netns-runner.js';
import { deleteStaleFlows } from '../src/backends/conntrack.js';
import { parseConfigText } from '../src/config/parse.js';
import { buildPolicy } from '../src/policy/build.js';
import { changedDecisions, MAX_CHANGED_BLOCKS, type ChangedDecisions } from '../src/policy/changes.js';
import type { FamilyPolicy } from '../src/policy/types.js';
import { spawnSync } from 'node:child_process';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const FLOWS = Number(args.get('flows') ?? 10_000);
const RUNS = Number(args.get('runs') ?? 3);
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

// One socket, one datagram per destination port: FLOWS entries, paced so the veth queue keeps up.
const FLOOD_JS = `
const u = require('node:dgram').createSocket('udp4');
const [host, n] = [process.argv[1], Number(process.argv[2])];
let port = 10000;
const burst = () => {
  for (let i = 0; i < 200 && port < 10000 + n; i++) u.send('x', port++, host);
  if (port < 10000 + n) setTimeout(burst, 2); else setTimeout(() => process.exit(0), 200);
};
u.bind(40000, burst);
`;

function policyWith(yaml: string): FamilyPolicy {
  const { config } = parseConfigText(yaml, 'config', { enableIPv6: false, nomasqAllReservedRanges: false });
  return buildPolicy(config, { enableIPv6: false, randomFully: false, toPorts: [] }).families[0]!;
}

function entries(topo: Topology): number {
  return Number(nsRun(topo.node, ['cat', '/proc/sys/net/netfilter/nf_conntrack_count']).trim());
}

function openFlows(topo: Topology): void {
  nsRun(topo.pod, [process.execPath, '-e', FLOOD_JS, ADDR.outsideDoc4, String(FLOWS)]);
}

/** Wall milliseconds and children's CPU milliseconds of `fn`. */
async function timed<T>(fn: () => Promise<T> | T): Promise<{ ms: number; cpuMs: number; value: T }> {
  const cpu0 = cpuTicks(process.pid).children;
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  return { ms, cpuMs: ((cpuTicks(process.pid).children - cpu0) * 1000) / CLK_TCK, value };
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  if (!canUseNetns() || spawnSync('conntrack', ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error('needs root, iproute2 and conntrack');
  const topo = createTopology();
  try {
    nsRun(topo.node, ['iptables-nft', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'to-out', '-j', 'MASQUERADE']);
    const run = netnsRunner(topo.node);
    const masqAll = policyWith('nonMasqueradeCIDRs: []');
    // Changes that cover none of the flows: exemptions in 192.0.2.0/24 removed (old kept: no --src-nat filter).
    const blocks = (n: number): ChangedDecisions => {
      const cidrs = Array.from({ length: n }, (_, i) => `192.0.2.${i * 8}/30`);
      return changedDecisions(policyWith(`nonMasqueradeCIDRs: [${cidrs.join(', ')}]`), masqAll);
    };
    const all = changedDecisions(masqAll, policyWith('nonMasqueradeCIDRs: [198.51.100.0/24]'));
    const rows: Record<string, { ms: number[]; cpuMs: number[]; deleted: number[]; commands: number }> = {};
    const note = (name: string, commands: number, r: { ms: number; cpuMs: number }, deleted: number): void => {
      const row = (rows[name] ??= { ms: [], cpuMs: [], deleted: [], commands });
      row.ms.push(r.ms);
      row.cpuMs.push(r.cpuMs);
      row.deleted.push(deleted);
    };
    for (let i = 0; i < RUNS; i++) {
      openFlows(topo);
      const before = entries(topo);
      const list = await timed(() => run(['conntrack', '-L', '-p', 'udp'], { maxStdoutBytes: 256 * 1024 * 1024 }));
      note('baseline: conntrack -L -p udp', 1, list, 0);
      for (const [name, changed] of [
        ['none: 1 block, no match', blocks(1)],
        [`bound: ${MAX_CHANGED_BLOCKS} blocks, no match`, blocks(MAX_CHANGED_BLOCKS)],
        ['all: 1 block, every flow', all],
      ] as const) {
        const r = await timed(() => deleteStaleFlows(run, changed));
        if (r.value.errors.length > 0) throw r.value.errors[0]!;
        note(name, changed.changes.reduce((n, c) => n + c.destinations.length, 0) * 2, r, r.value.deleted);
      }
      console.log(`run ${i + 1}: ${before} entries before, ${entries(topo)} after`);
    }
    console.log(`\n${FLOWS} UDP flows (SNATed), median of ${RUNS} runs; CPU is ip netns exec + conntrack`);
    const base = median(rows['baseline: conntrack -L -p udp']!.ms);
    for (const [name, r] of Object.entries(rows)) {
      const ms = median(r.ms);
      console.log(
        `  ${name.padEnd(32)} ${String(r.commands).padStart(3)} commands  ${ms.toFixed(1).padStart(7)} ms wall (${(ms / base).toFixed(2)}x baseline)  ${median(r.cpuMs).toFixed(0).padStart(5)} ms CPU  deleted ${median(r.deleted)}`,
      );
    }
  } finally {
    topo.cleanup();
  }
}

await main();
