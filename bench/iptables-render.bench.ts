// Time of the pure iptables rendering (issue 18): the restore payload and the `-S` lines the
// read-back compares with, for N exempt /32s (the plain layout) and N longest-prefix decisions.
// Not part of the test suite; needs no root and touches nothing.
//
//   npx tsc -p tsconfig.json && node dist/bench/iptables-render.bench.js [--baseline=DIR/render.js] [--repeats=15]
//
// `--baseline=` loads another build's compiled render.js (e.g. a copy of dist/ taken before a
// change) and times it in the same run on the same policies; ratios are ours / baseline. Figures
// are medians, printed, never asserted.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { formatCidr, parseCidr } from '../src/net/cidr.js';
import type { ExemptRange, FamilyPolicy } from '../src/policy/types.js';
import * as ours from '../src/backends/iptables/render.js';

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const REPEATS = Number(arg('repeats') ?? '15');
const BASELINE = arg('baseline');

type Render = Pick<typeof ours, 'renderRestorePayload' | 'renderChainSaveLines'>;

function range(text: string): ExemptRange {
  const cidr = parseCidr(text);
  return { cidr, text: formatCidr(cidr), reason: 'config', source: 'bench', path: '' };
}

/** n distinct /32s of 10.<second>.0.0/16 and up. */
const slash32s = (n: number, second: number): string[] => Array.from({ length: n }, (_, i) => `10.${second + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);

/** The plain layout: n exempt /32s, then the MASQUERADE rule. */
function plainPolicy(n: number): FamilyPolicy {
  return { family: 'ipv4', exempt: slash32s(n, 0).map(range), randomFully: true, toPorts: [] };
}

/** The decision layout: n/2 exempt /32s and n/2 masqueradeCIDRs /32s inside 10.0.0.0/8 (n + 2 rules). */
function decisionPolicy(n: number): FamilyPolicy {
  const half = Math.floor(n / 2);
  return {
    family: 'ipv4',
    exempt: [range('10.0.0.0/8'), ...slash32s(half, 0).map(range)],
    randomFully: true,
    toPorts: [],
    actions: slash32s(n - half, 100).map((t) => ({ ...range(t), action: { kind: 'masquerade' as const }, list: 'masqueradeCIDRs' as const })),
  };
}

function medianMs(work: () => unknown): number {
  work();
  const times: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const t0 = performance.now();
    work();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? Number.NaN;
}

const baseline: Render | undefined = BASELINE === undefined ? undefined : ((await import(pathToFileURL(BASELINE).href)) as Render);
const opts = { chain: 'IP-MASQ-AGENT', randomFully: true };
const rows: string[][] = [['case', 'restore ms', 'baseline', 'ratio', '-S ms', 'baseline', 'ratio']];
const fmt = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(1));
for (const [layout, make] of [
  ['plain', plainPolicy],
  ['decision', decisionPolicy],
] as const) {
  for (const n of [10_000, 50_000]) {
    const p = make(n);
    const time = (r: Render): [number, number] => [medianMs(() => r.renderRestorePayload(p, opts)), medianMs(() => r.renderChainSaveLines(p, opts))];
    if (baseline !== undefined) {
      const same = baseline.renderRestorePayload(p, opts) === ours.renderRestorePayload(p, opts) && baseline.renderChainSaveLines(p, opts).join('\n') === ours.renderChainSaveLines(p, opts).join('\n');
      if (!same) console.log(`WARNING ${layout} ${n}: the baseline renders different text`);
    }
    const [restore, save] = time(ours);
    const [bRestore, bSave] = baseline === undefined ? [undefined, undefined] : time(baseline);
    rows.push([`${layout} ${n.toLocaleString('en')}`, fmt(restore), fmt(bRestore), bRestore ? (restore / bRestore).toFixed(2) : '-', fmt(save), fmt(bSave), bSave ? (save / bSave).toFixed(2) : '-']);
  }
}
const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
for (const r of rows) console.log(r.map((v, c) => v.padStart(widths[c]!)).join('  '));
