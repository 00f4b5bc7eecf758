// Checks the structure of one config key's value (its descriptor's shape: the structure the JSON
// Schema states, keys.ts and schema.ts) by hand, straight into messages that say what was
// expected, what was found, and what to do: zod costs the agent about 14 MiB and 100 ms to load.
// test/config/structure.test.ts holds the faults found here to zod's on many values. Pure.
import { cutExcerpt, quoteExcerpt } from '../excerpt.js';
import { MIN_RESYNC_INTERVAL_MS } from './config.js';
import { parseGoDuration } from './duration.js';
import { KEYS, type ConfigKey } from './keys.js';

/** One step of a key path below a key: a list index or a snat field. */
export type PathPart = string | number;

/** A short description of a parsed value, for "expected X, got Y" messages; `written` is a number's source text. */
export function describeValue(v: unknown, written?: string): string {
  if (v === null || v === undefined) return 'null (no value)';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Date) return `a date (${v.toISOString().slice(0, 10)}; quote it to make it a string)`;
  if (v instanceof Uint8Array) return 'binary data';
  if (typeof v === 'string') return `string ${quoteExcerpt(v)}`;
  if (typeof v === 'number' || typeof v === 'bigint') return `number ${written ?? String(v)}`;
  if (typeof v === 'boolean') return `boolean ${String(v)}`;
  if (typeof v === 'object') return 'a mapping';
  return typeof v;
}

/** `<n>s` when Go accepts it as a duration, so the suggestion for a bare number is always one that works. */
function durationHint(numberText: string): string {
  try {
    parseGoDuration(`${numberText}s`);
    return `${numberText}s`;
  } catch {
    return KEYS.resyncInterval.defaultText;
  }
}

const NULL_ITEM = 'empty list item (null): remove the "-" that has nothing after it, or write a CIDR there';
const SNAT_ITEM = '{cidrs: [CIDR, ...], toSource: IP}';
const SNAT_FIELDS = new Set(['cidrs', 'toSource']);
const missingField = (field: string): string => `snat item has no ${field}: every item needs cidrs (a list of CIDRs) and toSource (an IP address)`;

/**
 * Every structural fault of a key's value, in words, in the order the JSON Schema's validators
 * report them; none when it fits. `written` gives a number's source text at a path, for messages.
 * A malformed duration string is not a fault here: the Go duration parser explains it better.
 */
export function structureFaults(key: ConfigKey, value: unknown, written: (rest: readonly PathPart[]) => string | undefined = () => undefined) {
  // Each fault: where below the key, and what to say.
  const faults: { readonly rest: readonly PathPart[]; readonly message: string }[] = [];
  const fault = (rest: readonly PathPart[], got: unknown, expected: string, ifNull: string, hint = ''): void => {
    faults.push({ rest, message: got === null || got === undefined ? ifNull : `expected ${expected}, got ${describeValue(got, written(rest))}${hint}` });
  };
  const stringList = (list: unknown, rest: readonly PathPart[], expected: string, ifNull: string): void => {
    if (!Array.isArray(list)) return fault(rest, list, expected, ifNull);
    // Indexes, not forEach: a hole in a sparse list is a fault too.
    for (let i = 0; i < list.length; i++) if (typeof list[i] !== 'string') fault([...rest, i], list[i], 'a CIDR string such as "10.0.0.0/8"', NULL_ITEM);
  };
  const d = KEYS[key];
  const ifNull =
    key === 'nonMasqueradeCIDRs'
      ? 'nonMasqueradeCIDRs has no value (null): write [] to masquerade everything except link-local, or remove the key for the defaults'
      : `${key} has no value (null): give ${d.expected}, or remove the key for the default (${d.defaultText})`;
  if (value === undefined) return faults;
  switch (d.shape) {
    case 'cidrList':
      stringList(value, [], d.expected, ifNull);
      break;
    case 'boolean':
      if (typeof value !== 'boolean') fault([], value, d.expected, ifNull);
      break;
    case 'count':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) fault([], value, d.expected, ifNull);
      else if (value > Number.MAX_SAFE_INTEGER) fault([], value, `${d.expected} of at most ${Number.MAX_SAFE_INTEGER}`, ifNull);
      break;
    case 'duration': {
      const floor = MIN_RESYNC_INTERVAL_MS / 1000;
      const hint =
        typeof value === 'number'
          ? ` (a bare number has no unit; write it quoted with a unit, e.g. ${key}: "${durationHint(written([]) ?? String(value))}"` +
            `${value < floor ? `; an interval below ${floor}s runs at ${floor}s` : ''})`
          : '';
      if (typeof value !== 'string') fault([], value, d.expected, ifNull, hint);
      break;
    }
    case 'snatList':
      if (!Array.isArray(value)) {
        fault([], value, d.expected, ifNull);
        break;
      }
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (typeof item !== 'object' || item === null || Array.isArray(item)) {
          fault([i], item, `a mapping ${SNAT_ITEM}`, `empty snat item (null): write ${SNAT_ITEM} there, or remove the "-"`);
          continue;
        }
        const { cidrs, toSource } = item as { cidrs?: unknown; toSource?: unknown };
        stringList(cidrs, [i, 'cidrs'], 'a list of CIDR strings', missingField('cidrs'));
        if (typeof toSource !== 'string') fault([i, 'toSource'], toSource, 'an IP address string such as "198.51.100.9"', missingField('toSource'));
        // Own keys: a parsed value has no inherited enumerable keys, so this is what the JSON Schema's validators walk.
        const unknown = Object.keys(item).filter((k) => !SNAT_FIELDS.has(k));
        const listed = `Unrecognized key${unknown.length > 1 ? 's' : ''}: ${unknown.map((k) => `"${k}"`).join(', ')}`;
        if (unknown.length > 0) faults.push({ rest: [i], message: `${cutExcerpt(listed)}: a snat item has only cidrs and toSource` });
      }
      break;
  }
  return faults;
}
