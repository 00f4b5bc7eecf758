// Memory and log volume of the agent PROCESS with the largest configs (issue 9), not part of the
// test suite.
//
//   npx tsc -p tsconfig.json && sudo node dist/bench/sizes.bench.js [--backend=nftables] [--resyncs=5] [--only=1,2] [--node-options=...]
//
// Needs root (network namespaces). Every agent runs inside a namespace this script creates and
// deletes (private xtables lock); nothing touches the host's netfilter state. For each config it
// starts the built agent, waits for the rules, lets a few resyncs pass, and prints the peak and
// current resident memory (VmHWM, VmRSS) and the bytes the agent wrote to stdout at the first
// sync and per resync after it, with the image's NODE_OPTIONS (read from the Dockerfile). The default config, measured in the same run, is the baseline
// (ratios). All waits are bounded; the figures are printed, never asserted.
import { canUseNetns, createNamespace, deleteNamespace } from '../test/netns/netns.js';
import { createConfigMapDir, createPrivateLock, rssKiB, startAgent } from '../test/agent/agent-process.js';
import { readFileSync } from 'node:fs';
import { printTargetSummary, reportTarget } from './targets.js';
import { imageNodeOptions } from './bench-node.js';

const arg = (name: string, fallback: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const BACKEND = arg('backend', 'nftables');
const IPTABLES_MODE = arg('iptables-mode', 'nft');
const RESYNCS = Number(arg('resyncs', '5'));
/** NODE_OPTIONS of the agent: the image's (Dockerfile) unless `--node-options=...` says otherwise ('' for none). */
const NODE_OPTIONS = arg('node-options', imageNodeOptions());
/** `--only=1,3` runs only those scenarios (0 is the baseline, always run). */
const ONLY = arg('only', '');

/** n distinct /32s of 10.0.0.0/8, from 10.<second>.0.0 on. */
function uniqueCidrs(n: number, second = 0): string[] {
  return Array.from({ length: n }, (_, i) => `10.${second + ((i >> 16) & 255)}.${(i >> 8) & 255}.${i & 255}/32`);
}

/** A config of `list` padded with duplicates of its first entry up to `bytes`. */
function configOf(list: readonly string[], bytes: number, extra: string): string {
  let text = `${extra}nonMasqueradeCIDRs:\n${list.map((c) => `  - ${c}\n`).join('')}`;
  const dup = `  - ${list[0] ?? '10.0.0.0/8'}\n`;
  if (text.length < bytes) text += dup.repeat(Math.floor((bytes - text.length) / dup.length));
  return text;
}

const MiB = 1024 * 1024;
const SCENARIOS: readonly { name: string; text: string | undefined }[] = [
  { name: 'default config (baseline)', text: undefined },
  { name: '10,000 unique /32s', text: configOf(uniqueCidrs(10_000), 0, 'cidrLimit: 100000\nresyncInterval: 2s\n') },
  { name: '1 MiB: ~50,000 unique /32s', text: configOf(uniqueCidrs(50_000), 0, 'cidrLimit: 100000\nresyncInterval: 2s\n') },
  { name: '1.5 MiB: 100,000 unique /32s, flow style', text: `cidrLimit: 200000\nresyncInterval: 2s\nnonMasqueradeCIDRs: [${uniqueCidrs(100_000).join(',')}]\n` },
  { name: '100,000 invalid items (numbers)', text: `resyncInterval: 2s\nnonMasqueradeCIDRs: [${Array(100_000).fill('1').join(',')}]\n` },
  { name: '1 MiB: 10.0.0.0/8 repeated', text: configOf(['10.0.0.0/8'], MiB, 'resyncInterval: 2s\n') },
  {
    name: '50,000 /32s, half of them masqueradeCIDRs',
    text: `cidrLimit: 100000\nresyncInterval: 2s\n${configOf(uniqueCidrs(25_000), 0, '')}masqueradeCIDRs:\n${uniqueCidrs(25_000, 100)
      .map((c) => `  - ${c}\n`)
      .join('')}`,
  },
];

/** The resident-memory targets of issue 11, by scenario index: after the resyncs (VmRSS), in MiB. */
const RSS_TARGETS: ReadonlyMap<number, number> = new Map([
  [1, 80],
  [2, 160],
]);

/** The agent's peak and current RSS; the current one with the commands it runs at the moment (rssKiB). */
function memKiB(pid: number): { hwm: number; rss: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { hwm: Number(/^VmHWM:\s+(\d+) kB/m.exec(s)?.[1] ?? NaN), rss: rssKiB(pid) };
}

const bytesOf = (lines: readonly { raw: string }[]): number => lines.reduce((a, l) => a + Buffer.byteLength(l.raw) + 1, 0);

async function measure(name: string, text: string | undefined): Promise<string[]> {
  const ns = createNamespace('sizes');
  const cm = createConfigMapDir();
  const lock = createPrivateLock();
  try {
    if (text !== undefined) cm.write(text);
    else cm.write('resyncInterval: 2s\n');
    const agent = startAgent(ns, [`--config=${cm.file}`, `--backend=${BACKEND}`, `--iptables-mode=${IPTABLES_MODE}`, '--v=2'], { env: NODE_OPTIONS ? { ...lock.env, NODE_OPTIONS } : lock.env });
    try {
      const applied = await agent.waitForLog((l) => l.msg === 'rules applied' || l.msg === 'rules already in place' || l.msg.startsWith('sync failed'), {
        timeoutMs: 180_000,
      });
      const first = await agent.waitForLog('sync done', { since: agent.logs.indexOf(applied), timeoutMs: 180_000 });
      const afterFirst = agent.logs.indexOf(first) + 1;
      const firstBytes = bytesOf(agent.logs.slice(0, afterFirst));
      let mark = afterFirst;
      for (let i = 0; i < RESYNCS; i++) {
        const done = await agent.waitForLog('sync done', { since: mark, timeoutMs: 180_000 });
        mark = agent.logs.indexOf(done) + 1;
      }
      const perResync = (bytesOf(agent.logs.slice(afterFirst, mark)) / RESYNCS).toFixed(0);
      const mem = memKiB(agent.pid);
      const failed = applied.msg.startsWith('sync failed') ? ' (sync failed)' : '';
      return [name + failed, `${(Buffer.byteLength(text ?? '') / 1024).toFixed(0)} KiB`, String(Math.round(mem.hwm / 1024)), String(Math.round(mem.rss / 1024)), String(firstBytes), perResync];
    } finally {
      await agent.stop(20_000).catch(() => agent.kill());
    }
  } finally {
    deleteNamespace(ns);
    cm.cleanup();
    lock.cleanup();
  }
}

async function main(): Promise<void> {
  if (!canUseNetns()) {
    console.error('needs root and iproute2 (network namespaces)');
    process.exit(2);
  }
  console.log(`\n## Agent memory and log volume, --backend=${BACKEND}, --v=2, ${RESYNCS} resyncs at 2 s${NODE_OPTIONS ? `, NODE_OPTIONS=${NODE_OPTIONS}` : ''}\n`);
  const rows: string[][] = [];
  for (const [i, s] of SCENARIOS.entries()) {
    if (ONLY && i > 0 && !ONLY.split(',').includes(String(i))) continue;
    rows.push(await measure(s.name, s.text));
    console.error(`  done: ${s.name}: ${rows[rows.length - 1]!.join(' | ')}`);
    const limit = RSS_TARGETS.get(i);
    const row = rows[rows.length - 1]!;
    if (limit !== undefined) {
      reportTarget({
        name: `agent RSS after ${RESYNCS} resyncs, ${s.name} (peak ${row[2]} MiB)`,
        measured: Number(row[3]),
        limit,
        unit: 'MiB',
        baseline: `fixed; default config ${rows[0]?.[3] ?? '?'} MiB in this run`,
      });
    }
  }
  const base = Number(rows[0]?.[2]);
  const header = ['config', 'size', 'peak RSS MiB', 'RSS MiB', 'stdout bytes to first sync', 'stdout bytes per resync', 'peak / baseline'];
  const table = rows.map((r) => [...r, `${(Number(r[2]) / base).toFixed(1)}x`]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of table) console.log(line(r));
  printTargetSummary();
}

await main();
