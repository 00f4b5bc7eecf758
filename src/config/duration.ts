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

/** Go's time.quote: non-ASCII and control bytes as `\xNN`, `"` and `\` escaped. */
function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (code >= 0x80 || code < 0x20) {
      for (const b of Buffer.from(ch, 'utf8')) out += `\\x${b.toString(16).padStart(2, '0')}`;
    } else {
      out += ch === '"' || ch === '\\' ? `\\${ch}` : ch;
    }
  }
  return out + '"';
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

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
  let s = text;
  let neg = false;
  if (s[0] === '-' || s[0] === '+') {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') throw invalid();
  let total = 0n;
  while (s !== '') {
    if (!(s[0] === '.' || isDigit(s[0]))) throw invalid();
    // Integer part; Go fails on anything above 2^63.
    let i = 0;
    let whole = 0n;
    for (; isDigit(s[i]); i++) {
      whole = whole * 10n + BigInt(s.charCodeAt(i) - 48);
      if (whole > TWO_63) throw invalid();
    }
    const pre = i > 0;
    s = s.slice(i);
    // Fraction; Go stops accumulating precision (silently) once it would pass 2^63.
    let frac = 0n;
    let scale = 1;
    let post = false;
    if (s[0] === '.') {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      for (; isDigit(s[j]); j++) {
        if (overflow) continue;
        const next = frac * 10n + BigInt(s.charCodeAt(j) - 48);
        if (frac > (TWO_63 - 1n) / 10n || next > TWO_63) {
          overflow = true;
          continue;
        }
        frac = next;
        scale *= 10;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) throw invalid();
    let k = 0;
    while (k < s.length && s[k] !== '.' && !isDigit(s[k])) k++;
    if (k === 0) throw new DurationError(`time: missing unit in duration ${goQuote(text)}`);
    const unitText = s.slice(0, k);
    s = s.slice(k);
    const unit = NS_PER_UNIT.get(unitText);
    if (unit === undefined) {
      throw new DurationError(`time: unknown unit ${goQuote(unitText)} in duration ${goQuote(text)}`);
    }
    if (whole > TWO_63 / unit) throw invalid();
    let v = whole * unit;
    if (frac > 0n) {
      // Go computes the fraction in float64 and truncates; do the same to get the same nanosecond.
      v += BigInt(Math.trunc(Number(frac) * (Number(unit) / scale)));
      if (v > TWO_63) throw invalid();
    }
    total += v;
    if (total > TWO_63) throw invalid();
  }
  if (neg) return -total;
  if (total > TWO_63 - 1n) throw invalid();
  return total;
}

/** Go's fmtFrac: `.digits` of v / 10^prec without trailing zeros (nothing when zero). */
function formatFraction(v: bigint, prec: number): { text: string; rest: bigint } {
  let text = '';
  let print = false;
  for (let i = 0; i < prec; i++) {
    const digit = v % 10n;
    print = print || digit !== 0n;
    if (print) text = String(digit) + text;
    v /= 10n;
  }
  return { text: print ? `.${text}` : '', rest: v };
}

/** Formats nanoseconds as Go's Duration.String() does (`1m0s`, `1.5s`, `500ms`, `1µs`, `0s`). */
export function formatGoDuration(ns: bigint): string {
  const neg = ns < 0n;
  const u = neg ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    if (u === 0n) return '0s';
    const [prec, unit] = u < 1_000n ? [0, 'ns'] : u < 1_000_000n ? [3, 'µs'] : [6, 'ms'];
    const { text, rest } = formatFraction(u, prec);
    out = `${rest}${text}${unit}`;
  } else {
    const { text, rest } = formatFraction(u, 9);
    const minutes = rest / 60n;
    out = `${rest % 60n}${text}s`;
    if (minutes > 0n) {
      const hours = minutes / 60n;
      out = `${minutes % 60n}m${out}`;
      if (hours > 0n) out = `${hours}h${out}`;
    }
  }
  return neg ? `-${out}` : out;
}
