// Connections per decision, counted by the real rules: on iptables-nft, iptables-legacy and
// nftables, N new UDP flows (distinct source ports) pod -> node -> outside to a masqueraded
// destination and M to exempt ones read back as exactly N and M. Each case builds its own
// topology in namespaces and deletes it. CAPTURE_COUNTERS=1 rewrites the captured listings that
// the parser's unit tests read (test/fixtures/counters/).
import { spawnSync } from 'node:child_process';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDecisionCounts } from '../../src/observe/decision-counts.js';
import { createMetrics } from '../../src/observe/metrics.js';
import { createIptablesBackend } from '../../src/backends/iptables/iptables-backend.js';
import { createNftablesBackend } from '../../src/backends/nftables/nftables-backend.js';
import type { Backend } from '../../src/backends/backend.js';
import { applyPolicy } from './sync.js';
import type { Runner } from '../../src/exec/runner.js';
import type { DecisionCount } from '../../src/policy/types.js';
import { ADDR, canUseNetns, createTopology, nsRun } from '../netns/netns.js';
import { netnsRunner } from '../netns/netns-runner.js';
import { AGENT_MAIN } from '../agent/agent-process.js';
import { countersFixturePath, COUNTED_POLICIES } from './decision-counters-fixtures.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
const lockDir = mkdtempSync(join(tmpdir(), 'ima-cnt-'));
after(() => rmSync(lockDir, { recursive: true, force: true }));

/** A runner confined to `ns`, with a private xtables lock (only legacy reads it). */
function runnerIn(ns: string): Runner {
  const run = netnsRunner(ns);
  return (argv, o = {}) => run(argv, { ...o, env: { ...o.env, XTABLES_LOCKFILE: join(lockDir, 'xtables.lock') } });
}

// One socket per flow, all open at once: each gets its own source port, so each is a new connection.
const SEND_JS = `
const dgram = require('node:dgram');
const [host, n] = [process.argv[1], Number(process.argv[2])];
let left = n;
for (let i = 0; i < n; i++) {
  const s = dgram.createSocket('udp4');
  s.send('x', 9, host, () => { s.close(); if (--left === 0) process.exit(0); });
}
`;

function sendFlows(pod: string, dst: string, n: number): void {
  nsRun(pod, [process.execPath, '-e', SEND_JS, dst, String(n)]);
}

interface Variant {
  readonly name: 'iptables-nft' | 'iptables-legacy' | 'nftables';
  backend(run: Runner): Backend;
}

/** The variant's counts of the plain policy, as the agent reads them. */
const readOf =
  (v: Variant) =>
  async (run: Runner): Promise<DecisionCount[]> =>
    (await v.backend(run).counters?.([COUNTED_POLICIES.plain])) ?? [];

const CHAIN = 'IP-MASQ-AGENT';
const VARIANTS: readonly Variant[] = [
  ...(['nft', 'legacy'] as const).map((mode): Variant => ({ name: `iptables-${mode}`, backend: (runner) => createIptablesBackend({ runner, mode, chain: CHAIN, randomFullySupported: true }) })),
  { name: 'nftables', backend: (runner) => createNftablesBackend(runner) },
];

/** Runs the built CLI inside `ns` with the private xtables lock. */
function operatorCli(ns: string, args: readonly string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, AGENT_MAIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, XTABLES_LOCKFILE: join(lockDir, 'xtables.lock') },
    timeout: 60_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Packets of the count of `cidr` (or of the rule of `list` when no CIDR). */
function packetsOf(counts: readonly DecisionCount[], list: string, cidr?: string): number | undefined {
  return counts.find((c) => c.list === list && c.cidr === cidr)?.packets;
}

for (const v of VARIANTS) {
  test(`${v.name}: the counters count the new connections each decision took, and a resync after traffic sees no drift`, { skip }, async () => {
    const topo = createTopology();
    try {
      const run = runnerIn(topo.node);
      const backend = v.backend(run);
      const policy = COUNTED_POLICIES.plain;
      await applyPolicy(backend, policy);
      const [masqueraded, exempt, doc] = [40, 30, 20];
      sendFlows(topo.pod, ADDR.outside4, masqueraded);
      sendFlows(topo.pod, ADDR.outsideExempt4, exempt);
      sendFlows(topo.pod, ADDR.outsideDoc4, doc);
      // Forwarding runs in softirq after the send returns: give the last packets a moment.
      await new Promise((r) => setTimeout(r, 300));
      const counts = await readOf(v)(run);
      assert.equal(packetsOf(counts, 'default'), masqueraded);
      assert.equal(packetsOf(counts, 'nonMasqueradeCIDRs', '10.0.0.0/8'), exempt);
      assert.equal(packetsOf(counts, 'nonMasqueradeCIDRs', '198.51.100.0/24'), doc);
      assert.equal(packetsOf(counts, 'link-local', '169.254.0.0/16'), 0);
      // The same counts through the scrape-time reader, as /metrics prints them.
      const metrics = createMetrics({ defaultMetrics: false, decisionCounts: createDecisionCounts({ read: () => readOf(v)(run), now: () => Date.now() }) });
      const text = await metrics.registry.metrics();
      assert.match(text, /^ip_masq_agent_decision_connections_total\{family="ipv4",action="masquerade",list="default"\} 40$/m);
      assert.match(text, /^ip_masq_agent_decision_connections_total\{family="ipv4",action="keep",list="nonMasqueradeCIDRs"\} 50$/m);
      assert.match(text, /^ip_masq_agent_decision_connections_total\{family="ipv4",action="keep",list="link-local"\} 0$/m);
      // What the agent compares to decide "rules in place": the counters must not show as drift.
      assert.deepEqual((await backend.read('ipv4')).owned, backend.expected(policy));
      assert.ok(backend.plan(await backend.read('ipv4'), policy).upToDate, 'a resync after traffic plans nothing to write');
      // What an operator sees: status and explain --counts of the built CLI on the node.
      const config = join(lockDir, 'ip-masq-agent');
      writeFileSync(config, 'nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n');
      const flags = ['--config', config, ...(v.name === 'nftables' ? ['--backend=nftables'] : ['--backend=iptables', `--iptables-mode=${v.name.slice(9)}`])];
      const status = operatorCli(topo.node, ['status', ...flags]);
      assert.equal(status.code, 0, status.stdout + status.stderr);
      assert.match(status.stdout, /^ {2}IPv4 {2}30 {2}keep 10\.0\.0\.0\/8 \(nonMasqueradeCIDRs\)$/m);
      assert.match(status.stdout, /^ {2}IPv4 {2}40 {2}masquerade \(the catch-all rule\)$/m);
      const explained = operatorCli(topo.node, ['explain', '--counts', ...flags, ADDR.outsideDoc4]);
      assert.match(explained.stdout, /the deciding rule counted 20 connections since the rules were last written\)$/m, explained.stdout + explained.stderr);
      if (process.env['CAPTURE_COUNTERS'] === '1') {
        const argv = v.name === 'nftables' ? ['nft', '-j', 'list', 'table', 'inet', 'ip-masq-agent'] : [`iptables-${v.name.slice(9)}`, '-w', '5', '-t', 'nat', '-S', CHAIN, '-v'];
        mkdirSync(join(countersFixturePath(''), '..'), { recursive: true });
        writeFileSync(countersFixturePath(v.name), (await run(argv)).stdout);
      }
    } finally {
      topo.cleanup();
    }
  });
}
