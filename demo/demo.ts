// The demonstration: the agent masquerading real traffic, inside namespaces this script creates.
//   pod (10.244.1.2) --> node (runs the agent) --> outside host (203.0.113.10, 10.244.200.10, 198.51.100.10)
// The outside host answers every connection with the source address it saw.
import { mkdtempSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, createTopology, nsRun, nsSpawn, sourceSeenBy, startPeerServer, type Topology } from '../test/netns/netns.js';

// The agent as it ships: the bundle `npm run build` writes.
const AGENT = new URL('../bin/ip-masq-agent.js', import.meta.url).pathname;

/** Writes the config dir as kubelet does for a ConfigMap volume: timestamped dir + ..data swap. */
function writeConfigMap(dir: string, text: string, n: number): void {
  const ts = `..2026_11_26_00_00_0${n}.00000000${n}`;
  mkdirSync(join(dir, ts));
  writeFileSync(join(dir, ts, 'ip-masq-agent'), text);
  symlinkSync(ts, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  try {
    symlinkSync('..data/ip-masq-agent', join(dir, 'ip-masq-agent'));
  } catch {
    /* the visible link already exists and never changes */
  }
}

function show(topo: Topology, label: string): void {
  console.log(`\n== ${label}`);
  console.log(`   rules in the node's nat table (iptables-save, our chain and jump):`);
  const save = nsRun(topo.node, ['iptables-nft-save', '-t', 'nat']);
  for (const line of save.split('\n').filter((l) => /IP-MASQ-AGENT/.test(l))) console.log(`     ${line}`);
  for (const [dst, why] of [
    [ADDR.outside4, 'internet-like, 203.0.113.0/24'],
    [ADDR.outsideExempt4, 'cluster-like, 10.244.0.0/16'],
    [ADDR.outsideDoc4, 'partner network, 198.51.100.0/24'],
  ] as const) {
    const seen = sourceSeenBy(topo.pod, dst);
    const verdict = seen === ADDR.pod4 ? 'pod IP kept (not masqueraded)' : seen === ADDR.node4 ? 'masqueraded behind the node IP' : 'unexpected';
    console.log(`   pod -> ${dst.padEnd(15)} (${why.padEnd(32)}) outside sees ${seen.padEnd(12)} ${verdict}`);
  }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function demo(): Promise<void> {
  const topo = createTopology();
  const cfgDir = mkdtempSync(join(tmpdir(), 'ip-masq-demo-'));
  const agentLog: string[] = [];
  let agent: ReturnType<typeof nsSpawn> | undefined;
  try {
    console.log(`namespaces: pod=${topo.pod} node=${topo.node} outside=${topo.outside}`);
    const server = await startPeerServer(topo.outside);
    try {
      console.log(`\nstarting the agent in the node namespace with no config file (defaults: 10/8, 172.16/12, 192.168/16)`);
      agent = nsSpawn(topo.node, [process.execPath, AGENT, `--config=${join(cfgDir, 'ip-masq-agent')}`, '--healthz-bind-address=', '--metrics-bind-address=']);
      agent.stdout?.on('data', (d: Buffer) => agentLog.push(...d.toString().split('\n').filter(Boolean)));
      agent.stderr?.on('data', (d: Buffer) => process.stderr.write(d));
      await waitFor('the first rules', () => agentLog.some((l) => l.includes('rules applied')));
      show(topo, 'defaults');

      console.log(`\nkubelet-style ConfigMap update: nonMasqueradeCIDRs: [198.51.100.0/24] (..data symlink swap)`);
      const before = agentLog.length;
      writeConfigMap(cfgDir, 'nonMasqueradeCIDRs:\n  - 198.51.100.0/24\nresyncInterval: 60s\n', 1);
      const t0 = Date.now();
      await waitFor('the new rules', () => agentLog.slice(before).some((l) => l.includes('rules applied')));
      console.log(`   new rules live ${Date.now() - t0} ms after the swap (watch, not the 60 s resync)`);
      show(topo, 'after the update');

      console.log(`\nsomeone flushes the chain; SIGHUP (or the next resync) heals it`);
      nsRun(topo.node, ['iptables-nft', '-w', '5', '-t', 'nat', '-F', 'IP-MASQ-AGENT']);
      const mark = agentLog.length;
      agent.kill('SIGHUP');
      await waitFor('the repair', () => agentLog.slice(mark).some((l) => l.includes('drifted')));
      show(topo, 'after the repair');

      console.log(`\nagent log (JSON lines):`);
      for (const l of agentLog) console.log(`   ${l.length > 240 ? `${l.slice(0, 237)}...` : l}`);
    } finally {
      server.stop();
    }
  } finally {
    agent?.kill('SIGTERM');
    topo.cleanup();
    rmSync(cfgDir, { recursive: true, force: true });
    console.log(`\ncleaned up: namespaces deleted, temp config removed`);
  }
}

demo().catch((e: unknown) => {
  console.error(`demo failed: ${(e as Error).message}`);
  process.exitCode = 1;
});
