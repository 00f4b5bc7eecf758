// Config text to validated config at the largest size (issue 11), in process, not part of the
// test suite. No root needed: nothing is run, only parsed.
//
//   npx tsc -p tsconfig.json && node dist/bench/parse.bench.js [--runs=7]
//
// For each config of 50,000 CIDRs it times parseConfigText (read, type-check, CIDR checks, merge
// with defaults and the CIDR limit) and, where the config uses the longest-prefix keys, the policy
// and the redundancy check the agent and `validate` run on it, after one warm-up parse of each (the
// first, cold parse in the process is printed too). Baselines, measured in the same run
// on the same text: the bare yaml library parse (YAML 1.1, plain values) and JSON.parse of the
// same lists as JSON. Medians of --runs runs; the 300 ms target is fixed. Printed, never asserted.
import { parse as parseYaml } from 'yaml';
import { parseConfigText } from '../src/config/parse.js';
import { buildPolicy } from '../src/policy/build.js';
import { findRedundantRows, usesDecisions } from '../src/policy/decide.js';
import { printTargetSummary, reportTarget } from './targets.js';

const arg = (name: string, fallback: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const RUNS = Number(arg('runs', '7'));
const N = 50_000;
const LIMIT_MS = 300;

/** n distinct /32s of 10.0.0.0/8 (as the sizes bench writes them). */
function uniqueCidrs(n: number, second = 0): string[] {
  return Array.from({ length: n }, (_, i) => `10.${second + ((i >> 16) & 255)}.${(i >> 8) & 255}.${i & 255}/32`);
}

const block = (key: string, list: readonly string[]) => `${key}:\n${list.map((c) => `  - ${c}\n`).join('')}`;
const half = N / 2;
const CASES: readonly { name: string; text: string; json: string }[] = [
  {
    name: `${N.toLocaleString('en')} nonMasqueradeCIDRs, block list`,
    text: `cidrLimit: 100000\nresyncInterval: 2s\n${block('nonMasqueradeCIDRs', uniqueCidrs(N))}`,
    json: JSON.stringify({ cidrLimit: 100000, resyncInterval: '2s', nonMasqueradeCIDRs: uniqueCidrs(N) }),
  },
  {
    name: `${N.toLocaleString('en')} CIDRs, flow list`,
    text: `cidrLimit: 100000\nnonMasqueradeCIDRs: [${uniqueCidrs(N).join(', ')}]\n`,
    json: JSON.stringify({ cidrLimit: 100000, nonMasqueradeCIDRs: uniqueCidrs(N) }),
  },
  {
    // Half the entries masquerade exceptions inside the other half's /16s: the redundancy check sees both.
    name: `${N.toLocaleString('en')} CIDRs, nonMasqueradeCIDRs + masqueradeCIDRs`,
    text: `cidrLimit: 100000\n${block('nonMasqueradeCIDRs', uniqueCidrs(half))}${block('masqueradeCIDRs', uniqueCidrs(half, 100))}`,
    json: JSON.stringify({ cidrLimit: 100000, nonMasqueradeCIDRs: uniqueCidrs(half), masqueradeCIDRs: uniqueCidrs(half, 100) }),
  },
];

const OPTS = { enableIPv6: false, nomasqAllReservedRanges: false };

/** Median wall time of `runs` calls, in ms. */
function median(runs: number, f: () => unknown): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

console.log(`\n## Config text to validated config, ${N.toLocaleString('en')} CIDRs, median of ${RUNS}\n`);
// The first parse in a process runs before the JIT has compiled the reader (an agent's start).
const cold = median(1, () => parseConfigText(CASES[0]!.text, '/bench', OPTS));
console.log(`first parse in this process (cold): ${cold.toFixed(0)} ms, ${CASES[0]!.name}`);
for (const c of CASES) parseConfigText(c.text, '/bench', OPTS);
for (const c of CASES) {
  const bytes = (Buffer.byteLength(c.text) / 1024).toFixed(0);
  // Interleaved in one loop per case, so a busy moment of the machine hits all of them alike.
  const yamlMs = median(RUNS, () => parseYaml(c.text, { version: '1.1' }));
  const jsonMs = median(RUNS, () => JSON.parse(c.json));
  const ours = median(RUNS, () => parseConfigText(c.text, '/bench', OPTS));
  const oursJson = median(RUNS, () => parseConfigText(c.json, '/bench', OPTS));
  const { config } = parseConfigText(c.text, '/bench', OPTS);
  const policy = buildPolicy(config, { enableIPv6: false, randomFully: false, toPorts: [] });
  const decisions = policy.families.some(usesDecisions);
  const checkMs = decisions ? median(RUNS, () => policy.families.map(findRedundantRows)) : 0;
  console.log(
    `${c.name} (${bytes} KiB): raw yaml parse ${yamlMs.toFixed(0)} ms, raw JSON.parse ${jsonMs.toFixed(1)} ms, ours from JSON text ${oursJson.toFixed(0)} ms${decisions ? `, redundancy check ${checkMs.toFixed(0)} ms` : ''}`,
  );
  reportTarget({
    name: `${c.name}: text to validated config${decisions ? ' + redundancy check' : ''}`,
    measured: ours + checkMs,
    limit: LIMIT_MS,
    unit: 'ms',
    baseline: `fixed; ${((ours + checkMs) / yamlMs).toFixed(2)}x the raw yaml parse of the same text (${yamlMs.toFixed(0)} ms), JSON.parse ${jsonMs.toFixed(1)} ms`,
  });
}
process.exitCode = printTargetSummary() > 0 ? 1 : 0;
