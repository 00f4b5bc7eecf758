// One descriptor per config key. Parse, structure, the schema, merge, the manifest, the config hash
// and the outputs (key-values.ts) all read this table: a new key is one entry here plus its meaning
// in merge (which does not compile without it) and in the policy.
/** Go time.ParseDuration's grammar: an optional sign, then `0` or number+unit groups. */
export const GO_DURATION_PATTERN = '^[-+]?(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$';

/** One config key. */
export interface KeyDescriptor {
  /**
   * The structure the key's value must have: `cidrList` a list of strings, `boolean`, `count` a
   * non-negative safe integer, `duration` a string matching GO_DURATION_PATTERN, `snatList` a list
   * of strict `{cidrs: string[], toSource: string}` objects. structure.ts checks it by hand exactly
   * as the zod schema does (a test compares the two).
   */
  readonly shape: 'cidrList' | 'boolean' | 'count' | 'duration' | 'snatList';
  /** The JSON Schema's title, description and examples of the key. */
  readonly title: string;
  readonly description: string;
  readonly examples?: readonly string[];
  /** "expected X" in messages. */
  readonly expected: string;
  /** The default, as messages name it. */
  readonly defaultText: string;
  /** For CIDR lists, and only them: what its entries mean to the longest-prefix decision (lists concatenate across files). */
  readonly role?: 'keep' | 'masquerade' | 'source' | 'snat';
  /**
   * A key added after configs were first hashed: while empty it is left out of the resolved
   * config, its hash and every output, so a config without it hashes (and so is not re-applied),
   * logs and prints exactly as before the key existed.
   */
  readonly omitWhenEmpty?: true;
  /** For keys that are not lists: the value a config that leaves the key out gets, as parse reads it (a duration in ns). */
  readonly default?: number | boolean | bigint;
  /** How validate's one-line summary shows the key: a count of its entries, or `key value` in parentheses or after them; absent: not shown. */
  readonly summary?: { readonly count: string } | 'parenthesized' | 'trailing';
}

/** Every config key, in the order the documentation lists them. */
export const KEYS = {
  nonMasqueradeCIDRs: {
    shape: 'cidrList',
    title: 'Non-masquerade CIDRs',
    description:
      'Destinations that keep the pod source IP (not masqueraded), in rule order. [] masquerades everything except link-local; leaving the key out uses the defaults 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (all reserved ranges with --nomasq-all-reserved-ranges).',
    expected: 'a list of CIDR strings',
    defaultText: 'the default list',
    role: 'keep',
    summary: { count: 'non-masquerade CIDR' },
  },
  cidrLimit: {
    shape: 'count',
    title: 'CIDR limit',
    description: 'Maximum number of CIDRs of all lists together (IPv4 and IPv6, link-local not counted). Default 64.',
    expected: 'a non-negative integer',
    defaultText: '64',
    default: 64,
    summary: 'parenthesized',
  },
  masqLinkLocal: {
    shape: 'boolean',
    title: 'Masquerade IPv4 link-local',
    description: 'true masquerades traffic to 169.254.0.0/16 too; default false (link-local keeps the pod IP).',
    expected: 'true or false',
    defaultText: 'false',
    default: false,
  },
  masqLinkLocalIPv6: {
    shape: 'boolean',
    title: 'Masquerade IPv6 link-local',
    description: 'true masquerades traffic to fe80::/10 too; default false (link-local keeps the pod IP).',
    expected: 'true or false',
    defaultText: 'false',
    default: false,
  },
  resyncInterval: {
    shape: 'duration',
    title: 'Resync interval',
    description: 'How often the config is re-read and the rules re-checked, as a Go duration string ("60s", "1m30s", "500ms"); not negative, and anything below 1s runs at 1s. Default "60s".',
    examples: ['60s', '1m30s'],
    expected: 'a Go duration string such as "60s"',
    defaultText: '60s',
    default: 60_000_000_000n,
    summary: 'trailing',
  },
  masqueradeCIDRs: {
    shape: 'cidrList',
    title: 'Masquerade CIDRs',
    description:
      'Destinations that ARE masqueraded although a shorter nonMasqueradeCIDRs (or link-local) prefix covers them: the longest matching prefix decides. With nonMasqueradeCIDRs [0.0.0.0/0, ::/0] only these are masqueraded. Default none.',
    expected: 'a list of CIDR strings',
    defaultText: 'none',
    role: 'masquerade',
    omitWhenEmpty: true,
    summary: { count: 'masquerade CIDR' },
  },
  snat: {
    shape: 'snatList',
    title: 'SNAT to a fixed address',
    description:
      'Traffic to these destinations is SNATed to toSource instead of masqueraded; cidrs [0.0.0.0/0] makes it the default egress address. --random-fully and --to-ports apply as to MASQUERADE. Default none.',
    expected: 'a list of {cidrs: [CIDR, ...], toSource: IP} mappings',
    defaultText: 'none',
    role: 'snat',
    omitWhenEmpty: true,
    summary: { count: 'SNAT CIDR' },
  },
  masqueradeSourceCIDRs: {
    shape: 'cidrList',
    title: 'Masquerade source CIDRs',
    description:
      'When set, only traffic from these sources (e.g. the pod CIDRs) is ever masqueraded or SNATed; traffic from any other source (forwarded inbound, the node itself) leaves untouched. Default: every source.',
    expected: 'a list of CIDR strings',
    defaultText: 'every source',
    role: 'source',
    omitWhenEmpty: true,
    summary: { count: 'masquerade source CIDR' },
  },
} as const satisfies Record<string, KeyDescriptor>;

/** One config key. */
export type ConfigKey = keyof typeof KEYS;

/** The config keys, in the order the documentation lists them. */
export const CONFIG_KEYS = Object.keys(KEYS) as ConfigKey[];

/** The keys whose value is a list of CIDR entries (the keys with a role), concatenated across files: plain lists and `snat`. */
export type ListKey = { [K in ConfigKey]: (typeof KEYS)[K] extends { readonly role: string } ? K : never }[ConfigKey];

/** The keys whose value is a plain list of CIDR strings (every list but the `snat` role's). */
export type CidrListKey = { [K in ListKey]: (typeof KEYS)[K]['role'] extends 'snat' ? never : K }[ListKey];

/** The keys every file must agree on: one value across all files. */
export type AgreeKey = Exclude<ConfigKey, ListKey>;

/** The list keys, in documentation order (the order cidrLimit counts their entries in). */
export const LIST_KEYS = CONFIG_KEYS.filter((k): k is ListKey => 'role' in KEYS[k]);

/** The plain CIDR-list keys, in documentation order. */
export const CIDR_LIST_KEYS = LIST_KEYS.filter((k): k is CidrListKey => KEYS[k].role !== 'snat');

/** Whether a key holds a plain list of CIDR strings. */
export function isCidrListKey(key: string): key is CidrListKey {
  return (CIDR_LIST_KEYS as readonly string[]).includes(key);
}
