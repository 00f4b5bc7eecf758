// What the config hash, the outputs and merge read of a config's keys, driven by
// the key descriptors (keys.ts): every key in documentation order, list keys as their entries,
// agree keys as their resolved value. Nothing here names a key, so a new descriptor is covered.
import { createHash } from 'node:crypto';
import type { CidrEntry, MasqConfig, SnatCidrEntry } from './config.js';
import { CONFIG_KEYS, KEYS, LIST_KEYS, type ConfigKey, type ListKey } from './keys.js';

/** Whether a key appears in the config, its hash and the outputs: always, unless it is omitWhenEmpty (only lists are) and empty. */
export function isKeyShown(config: Partial<Record<ListKey, readonly CidrEntry[]>>, key: ConfigKey): boolean {
  return !('omitWhenEmpty' in KEYS[key]) || (config[key as ListKey] ?? []).length > 0;
}

/** The form a list entry takes: `hash` (a snat entry as `cidr>toSource`) or `output` (as `{cidr, toSource}`). */
export type EntryForm = 'hash' | 'output';

/** One list entry in the given form: its canonical CIDR text, plus the address for the snat role. */
export function entryValue(key: ListKey, e: CidrEntry, form: EntryForm): unknown {
  if (KEYS[key].role !== 'snat') return e.text;
  const s = e as SnatCidrEntry;
  return form === 'hash' ? `${s.text}>${s.toSourceText}` : { cidr: s.text, toSource: s.toSourceText };
}

/** Every shown key with its value (lists as entries in `form`), in documentation order. */
export function configValues(config: MasqConfig, form: EntryForm): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS.filter((k) => isKeyShown(config, k))) {
    out[key] = 'role' in KEYS[key] ? (config[key as ListKey] ?? []).map((e) => entryValue(key as ListKey, e, form)) : config[key];
  }
  return out;
}

/** Every entry of every list of a config (or of merge's lists), in documentation order of the lists (what cidrLimit counts). */
export function allListEntries<E extends CidrEntry>(lists: Partial<Record<ListKey, readonly E[]>>): E[] {
  const all: E[] = [];
  // Loops, not spreads: a list may hold tens of thousands of entries.
  for (const key of LIST_KEYS) for (const e of lists[key] ?? []) all.push(e);
  return all;
}

/**
 * The list keys as the "config applied" log line shows them: each shown list whole up to `max`
 * entries, else its first 10 and a count field (`nonMasqueradeCIDRCount`), so no list floods the log.
 */
export function loggedLists(config: MasqConfig, max: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const counts: Record<string, number> = {};
  for (const key of LIST_KEYS.filter((k) => isKeyShown(config, k))) {
    const entries: readonly CidrEntry[] = config[key] ?? [];
    const shown = entries.length <= max ? entries : entries.slice(0, 10);
    out[key] = shown.map((e) => entryValue(key, e, 'output'));
    if (shown.length < entries.length) counts[`${key.replace(/s$/, '')}Count`] = entries.length;
  }
  return { ...out, ...counts };
}

/**
 * Stable JSON of what the config means (not where it came from), so that the same effective
 * config always hashes the same even when files move (and without keys left out while empty).
 */
export function stableConfigJson(config: MasqConfig): string {
  return JSON.stringify(configValues(config, 'hash'));
}

/** sha256 hex of the effective config, for change detection and metrics. */
export function hashConfig(config: MasqConfig): string {
  return createHash('sha256').update(stableConfigJson(config)).digest('hex');
}
