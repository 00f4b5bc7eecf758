// Checks the structure of one config key's value (list of strings, boolean, integer, duration
// string, snat items) from its descriptor's shape, by hand: zod, which keys.ts describes the same
// structure in for the JSON Schema, costs the agent about 14 MiB and 100 ms to load. The issues
// are zod's, in zod's order, with its path, code and input (and message where parse's messages
// quote it), so every message parse builds from them is unchanged; test/config/structure.test.ts
// compares both on many values.
import { GO_DURATION_PATTERN, type ValueShape } from './keys.js';

/** A path below the key: list indexes and snat field names. */
export type StructurePath = readonly (string | number)[];

/** One structural fault, as zod reports it. */
export interface StructureIssue {
  readonly path: StructurePath;
  readonly code: 'invalid_type' | 'too_small' | 'too_big' | 'invalid_format' | 'unrecognized_keys';
  /** The value at `path` that is wrong. */
  readonly input: unknown;
  /** zod's text, for the codes whose messages quote it (invalid_format, unrecognized_keys). */
  readonly message?: string;
}

const DURATION = new RegExp(GO_DURATION_PATTERN);
const SNAT_FIELDS = new Set(['cidrs', 'toSource']);

/** Every structural fault of `value` against `shape`; none when it fits (undefined fits every shape: the key is optional). */
export function checkStructure(shape: ValueShape, value: unknown): StructureIssue[] {
  const issues: StructureIssue[] = [];
  if (value === undefined) return issues;
  switch (shape) {
    case 'cidrList':
      checkStringList(value, [], issues);
      break;
    case 'boolean':
      if (typeof value !== 'boolean') issues.push({ path: [], code: 'invalid_type', input: value });
      break;
    case 'count':
      checkCount(value, issues);
      break;
    case 'duration':
      if (typeof value !== 'string') issues.push({ path: [], code: 'invalid_type', input: value });
      else if (!DURATION.test(value)) issues.push({ path: [], code: 'invalid_format', input: value, message: `Invalid string: must match pattern ${String(DURATION)}` });
      break;
    case 'snatList':
      checkSnatList(value, issues);
      break;
  }
  return issues;
}

function checkStringList(value: unknown, path: StructurePath, issues: StructureIssue[]): void {
  if (!Array.isArray(value)) {
    issues.push({ path, code: 'invalid_type', input: value });
    return;
  }
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (typeof item !== 'string') issues.push({ path: [...path, i], code: 'invalid_type', input: item });
  }
}

/** z.number().int().min(0): a finite number, then an integer (else stop), then safe, then not negative. */
function checkCount(value: unknown, issues: StructureIssue[]): void {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    issues.push({ path: [], code: 'invalid_type', input: value });
    return;
  }
  if (value > Number.MAX_SAFE_INTEGER) issues.push({ path: [], code: 'too_big', input: value });
  if (value < -Number.MAX_SAFE_INTEGER) issues.push({ path: [], code: 'too_small', input: value });
  if (value < 0) issues.push({ path: [], code: 'too_small', input: value });
}

/** A list of strict objects {cidrs: string[], toSource: string}: each item's fields in that order, then its unknown keys. */
function checkSnatList(value: unknown, issues: StructureIssue[]): void {
  if (!Array.isArray(value)) {
    issues.push({ path: [], code: 'invalid_type', input: value });
    return;
  }
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      issues.push({ path: [i], code: 'invalid_type', input: item });
      continue;
    }
    const fields = item as { cidrs?: unknown; toSource?: unknown };
    checkStringList(fields.cidrs, [i, 'cidrs'], issues);
    if (typeof fields.toSource !== 'string') issues.push({ path: [i, 'toSource'], code: 'invalid_type', input: fields.toSource });
    const unknown: string[] = [];
    // for...in as zod walks the item (inherited enumerable keys too; a parsed value has none).
    for (const k in item) if (!SNAT_FIELDS.has(k)) unknown.push(k);
    if (unknown.length > 0) {
      issues.push({
        path: [i],
        code: 'unrecognized_keys',
        input: item,
        message: `Unrecognized key${unknown.length > 1 ? 's' : ''}: ${unknown.map((k) => `"${k}"`).join(', ')}`,
      });
    }
  }
}
