// One format for the footprint targets (docs/performance.md): each target is printed as one line
// with its measured value, the baseline measured in the same run, the limit and whether it is met.
// Benchmarks print these lines; nothing here asserts (targets belong in benchmarks, not tests).

/** A footprint target: `measured` must be at most `limit` (in `unit`), with the baseline it came from. */
export interface Target {
  readonly name: string;
  readonly measured: number;
  readonly limit: number;
  readonly unit: string;
  /** How the limit was derived, e.g. "2x bare node (180 ms)" or "fixed". */
  readonly baseline: string;
}

const results: Target[] = [];

const num = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(Math.abs(v) >= 10 ? 1 : 2));

/** Records a target and prints its line at once, so a long run shows progress. */
export function reportTarget(t: Target): void {
  results.push(t);
  console.log(`  ${targetLine(t)}`);
}

/** One line: `met   name: 41.2 MiB <= 50 MiB (baseline: fixed)`. */
export function targetLine(t: Target): string {
  const verdict = t.measured <= t.limit ? 'met   ' : 'MISSED';
  return `${verdict} ${t.name}: ${num(t.measured)} ${t.unit} <= ${num(t.limit)} ${t.unit} (baseline: ${t.baseline})`;
}

/** Prints every target recorded so far as a summary block; returns how many were missed. */
export function printTargetSummary(): number {
  if (results.length === 0) return 0;
  console.log('\nTargets:');
  for (const t of results) console.log(`  ${targetLine(t)}`);
  return results.filter((t) => t.measured > t.limit).length;
}
