// Go's time.ParseDuration and Duration.String(), so `resyncInterval` means exactly what it means to
// the reference agent. No npm library matched Go on the edge cases (fractions, µs, overflow).

const NS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['µs', 1_000n], // U+00B5 micro sign
  ['μs', 1_000n], // U+03BC Greek mu
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

const TWO_63 = 1n << 63n;

/** Go's time.quote, byte by byte: non-ASCII and control bytes as `\xNN`, `"` and `\` escaped. */
function goQuote(s: string): string {
  const escaped = Buffer.from(s, 'utf8').toString('latin1').replace(/["\\]/g, '\\$&');
  return `"${escaped.replace(/[^ -\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}"`;
}

/** An unparsable Go duration; the message is Go's own error text. */
export class DurationError extends Error {
  override readonly name = 'DurationError';
}

/**
 * Parses a Go duration string (`60s`, `1m30s`, `1.5h`, `500ms`, `2µs`, `-1s`) into nanoseconds,
 * with Go's rules, limits (int64) and error texts (`time: unknown unit "d" in duration "1d"`).
 */
export function parseGoDuration(text: string): bigint {
  const invalid = () => new DurationError(`time: invalid duration ${goQuote(text)}`);
  const neg = text.startsWith('-');
  let s = neg || text.startsWith('+') ? text.slice(1) : text;
  if (s === '0') return 0n;
  if (s === '') throw invalid();
  let total = 0n;
  while (s !== '') {
    // One group: digits, a fraction, then the unit (everything up to the next digit or dot).
    const [group, whole = '', fraction, unitText = ''] = /^(\d*)(?:\.(\d*))?([^\d.]*)/.exec(s)!;
    s = s.slice(group.length);
    // Go fails on an integer part above 2^63, and on a group without a digit.
    if ((whole === '' && !fraction) || (whole !== '' && BigInt(whole) > TWO_63)) throw invalid();
    if (unitText === '') throw new DurationError(`time: missing unit in duration ${goQuote(text)}`);
    const unit = NS_PER_UNIT.get(unitText);
    if (unit === undefined) throw new DurationError(`time: unknown unit ${goQuote(unitText)} in duration ${goQuote(text)}`);
    if (BigInt(whole || '0') > TWO_63 / unit) throw invalid();
    // Go stops reading fraction digits (silently) once they would pass 2^63.
    let frac = 0n;
    let scale = 1;
    for (const digit of fraction ?? '') {
      const next = frac * 10n + BigInt(digit);
      if (next > TWO_63) break;
      frac = next;
      scale *= 10;
    }
    // Go computes the fraction in float64 and truncates; do the same to get the same nanosecond.
    total += BigInt(whole || '0') * unit + BigInt(Math.trunc(Number(frac) * (Number(unit) / scale)));
    if (total > TWO_63) throw invalid();
  }
  if (neg) return -total;
  if (total > TWO_63 - 1n) throw invalid();
  return total;
}

/** Go's fmtFrac: `.digits` of v / 10^prec without trailing zeros (nothing when zero), and v / 10^prec. */
function formatFraction(v: bigint, prec: number): [string, bigint] {
  const scale = 10n ** BigInt(prec);
  const digits = (v % scale).toString().padStart(prec, '0').replace(/0+$/, '');
  return [digits === '' ? '' : `.${digits}`, v / scale];
}

/** Formats nanoseconds as Go's Duration.String() does (`1m0s`, `1.5s`, `500ms`, `1µs`, `0s`). */
export function formatGoDuration(ns: bigint): string {
  const sign = ns < 0n ? '-' : '';
  const u = ns < 0n ? -ns : ns;
  if (u === 0n) return '0s';
  if (u < 1_000_000_000n) {
    const [prec, unit] = u < 1_000n ? [0, 'ns'] : u < 1_000_000n ? [3, 'µs'] : [6, 'ms'];
    const [fraction, whole] = formatFraction(u, prec);
    return `${sign}${whole}${fraction}${unit}`;
  }
  const [fraction, seconds] = formatFraction(u, 9);
  const hours = seconds >= 3600n ? `${seconds / 3600n}h` : '';
  const minutes = seconds >= 60n ? `${(seconds / 60n) % 60n}m` : '';
  return `${sign}${hours}${minutes}${seconds % 60n}${fraction}s`;
}
