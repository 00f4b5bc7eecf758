// Parses `nft -j list table inet ip-masq-agent`, once, into our objects per family and the table's
// flags and foreign objects. Anything it does not know is kept as JSON text: it then shows up as
// drift, and the next apply replaces it, instead of crashing the read.
import { BITS, formatIp, parseIp, type Family, type IpAddress } from '../../net/cidr.js';
import { intervalText, type Interval } from '../../net/intervals.js';
import { canonicalLines, type NftObject } from './model.js';
import { NFT_NAMES, NFT_TABLE, NFT_TABLE_FAMILY, isAgentObject } from './names.js';

type Json = unknown;
/** A JSON object as `nft -j` prints one. */
export type JsonObject = Record<string, Json>;

/** Whether a parsed JSON value is an object (not null, not an array). */
export function isObject(v: Json): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * nft 1.0.6 prints a table's flags from freed memory: a stray string (`"flags": "ipv4_addr"`), or,
 * when those bytes are not valid text, nothing at all, which cuts the document off right there.
 * Measured on a dormant table, with and without objects in it.
 */
const CUT_AT_TABLE_FLAGS = /\{\s*"table"\s*:\s*\{[^{}]*"flags"\s*:\s*$/;

/** Stands in for a document cut at the table's flags: a table with flags, contents unseen. */
const UNREADABLE_TABLE = { table: { family: NFT_TABLE_FAMILY, name: NFT_TABLE, flags: null } };

/** The nft objects (`{"set": {...}}`, `{"rule": {...}}`, ...) of a `nft -j` document. */
export function nftObjects(json: string): JsonObject[] {
  let doc: Json;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    if (CUT_AT_TABLE_FLAGS.test(json)) return [UNREADABLE_TABLE];
    throw new Error(`nft -j printed something that is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!isObject(doc) || !Array.isArray(doc['nftables'])) {
    throw new Error('nft -j output has no "nftables" array');
  }
  return doc['nftables'].filter(isObject);
}

/** Only objects of our own table, in case nft ever lists more than was asked for. */
export function ours(o: Json): o is JsonObject {
  return isObject(o) && o['family'] === NFT_TABLE_FAMILY && o['table'] === NFT_TABLE;
}

/** An inclusive address range. */
type Span = Omit<Interval<unknown>, 'value'>;

/** A set element, map key or match operand as canonical text, with its range when it is one (for the address-order sort). */
interface Element {
  readonly text: string;
  readonly span: Span | undefined;
}

function tryIp(addr: Json): IpAddress | undefined {
  if (typeof addr !== 'string') return undefined;
  try {
    return parseIp(addr);
  } catch {
    // nft (inet_ntop) prints an address of ::ffff:0:0/96 as `::ffff:a.b.c.d`, which parseIp refuses
    // in a config; an interval we wrote may still start or end there.
    const v4 = tryIp(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr)?.[1]);
    return v4?.family === 'ipv4' ? { family: 'ipv6', value: (0xffffn << 32n) | v4.value } : undefined;
  }
}

/** The address range of an address, `{"prefix"}` or `{"range"}`; undefined when it is none. */
function spanOf(e: Json): Span | undefined {
  const ip = tryIp(e);
  if (ip) return { family: ip.family, first: ip.value, last: ip.value };
  const { prefix, range } = isObject(e) ? e : {};
  if (isObject(prefix) && typeof prefix['len'] === 'number') {
    const [a, len] = [tryIp(prefix['addr']), prefix['len']];
    const host = a && Number.isInteger(len) && len >= 0 && len <= BITS[a.family] ? (1n << BigInt(BITS[a.family] - len)) - 1n : undefined;
    return a && host !== undefined && (a.value & host) === 0n ? { family: a.family, first: a.value, last: a.value | host } : undefined;
  }
  const [a, b] = Array.isArray(range) && range.length === 2 ? range.map(tryIp) : [];
  return a && b && a.family === b.family ? { family: a.family, first: a.value, last: b.value } : undefined;
}

/**
 * A set element (or anonymous-set item) as its canonical text. nft 1.0.6 prints a block as
 * `{"prefix"}`, a single address as a plain string, any other interval as `{"range"}`: all come
 * back as CIDR text where they are one (else `a-b`), so they compare equal to what was rendered.
 */
export function parseElement(e: Json): Element {
  const elem = isObject(e) ? e['elem'] : undefined;
  // Elements with a timeout or comment come wrapped as {"elem": {"val": ...}}.
  if (isObject(elem) && 'val' in elem) {
    const inner = parseElement(elem['val']);
    // A counter's values change with traffic: they are no state of ours.
    const extra = Object.keys(elem).some((k) => k !== 'val' && k !== 'counter');
    return extra ? { ...inner, text: `${inner.text} ${JSON.stringify(elem)}` } : inner;
  }
  const span = spanOf(e);
  return { text: span ? intervalText(span) : jsonText(e), span };
}

/** Address order (the wider block first, as compareCidrs orders blocks), then anything else by text, so both sides of a compare agree. */
function compareElements({ span: x, text: a }: Element, { span: y, text: b }: Element): number {
  if (x && y && x.family !== y.family) return x.family === 'ipv4' ? -1 : 1;
  if (x && y && x.first !== y.first) return x.first < y.first ? -1 : 1;
  if (x && y && x.last !== y.last) return x.last > y.last ? -1 : 1;
  if (!x !== !y) return x ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** An anonymous set item, or a map pair `key : value` (the key as set elements read, the address canonical). */
function setItem(item: Json): Element {
  if (!Array.isArray(item)) return parseElement(item);
  const [key, value] = [parseElement(item[0]), tryIp(item[1])];
  return { ...key, text: `${key.text} : ${value ? formatIp(value) : jsonText(item[1])}` };
}

/** `0x00004000`: nft prints a mark operand as 8 hex digits. */
const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** A value or a list of them, joined as nft joins it (`daddr . saddr`, `random,fully-random`). */
const listText = (v: Json, separator: string): string => (Array.isArray(v) ? v.map(jsonText).join(separator) : jsonText(v));

/** The ` to :PORTS FLAGS` of a masquerade or the `:PORTS FLAGS` of a snat. */
function portsAndFlags(v: JsonObject, to: string): string {
  const port = v['port'] === undefined ? '' : `${to}${jsonText(v['port'])}`;
  return `${port}${v['flags'] === undefined ? '' : ` ${listText(v['flags'], ',')}`}`;
}

/** Whether the object has no keys but these. */
const onlyKeys = (v: JsonObject, ...keys: string[]): boolean => Object.keys(v).every((k) => keys.includes(k));

/** nft's text of each expression and statement we write, from its JSON body; undefined for a form we do not write. */
const FORMS: Readonly<Record<string, (v: JsonObject) => string | undefined>> = {
  meta: (v) => `meta ${jsonText(v['key'])}`,
  payload: (v) => `${jsonText(v['protocol'])} ${jsonText(v['field'])}`,
  fib: (v) => `fib ${listText(v['flags'], ' . ')} ${jsonText(v['result'])}`,
  numgen: (v) => `numgen ${jsonText(v['mode'])} mod ${jsonText(v['mod'])}${v['offset'] ? ` offset ${jsonText(v['offset'])}` : ''}`,
  prefix: (v) => `${jsonText(v['addr'])}/${jsonText(v['len'])}`,
  map: (v) => `${jsonText(v['key'])} map ${jsonText(v['data'])}`,
  jump: (v) => `jump ${jsonText(v['target'])}`,
  goto: (v) => `goto ${jsonText(v['target'])}`,
  // Counter values change with traffic: only the counter's presence is state.
  counter: () => 'counter',
  match: ({ left, op, right }) => {
    // nft spells out `==` after a bitwise and, and prints its number in hex.
    if (isObject(left) && '&' in left && typeof right === 'number') return `${jsonText(left)} ${jsonText(op)} ${hex32(right)}`;
    // An address, prefix or range (nft turns a one-element anonymous set into one) as set elements read.
    return `${jsonText(left)} ${op === '==' ? '' : `${jsonText(op)} `}${parseElement(right).text}`;
  },
  // The forms we write: the source bound to itself (`snat ip to ip saddr`), and the address
  // looked up by destination (`snat ip to ip daddr map { ... }`), with ports and flags.
  snat: (v) => {
    const addr = v['addr'];
    const known = onlyKeys(v, 'family', 'addr', 'port', 'flags') && typeof v['family'] === 'string';
    if (!known || !isObject(addr) || !(isObject(addr['payload']) || isObject(addr['map']))) return undefined;
    return `snat ${jsonText(v['family'])} to ${jsonText(addr)}${portsAndFlags(v, ':')}`;
  },
  masquerade: (v) => (onlyKeys(v, 'port', 'flags') ? `masquerade${portsAndFlags(v, ' to :')}` : undefined),
};

/** nft's text of a JSON value, expression or statement: `meta l4proto`, `ip daddr @nonmasq4`, `return`. */
function jsonText(x: Json): string {
  if (typeof x === 'string') return x;
  const [key = '', value] = isObject(x) && Object.keys(x).length === 1 ? Object.entries(x)[0]! : [];
  if (value === null) return key;
  if (key === '&' && Array.isArray(value) && value.length === 2 && typeof value[1] === 'number') {
    return `${jsonText(value[0])} & ${hex32(value[1])}`;
  }
  // An anonymous set or map, `{ a, b }`: its elements in address order, as nft prints it.
  if (key === 'set' && Array.isArray(value)) {
    const items = value.map(setItem).sort(compareElements);
    return `{ ${items.map((e) => e.text).join(', ')} }`;
  }
  if (key === 'range' && Array.isArray(value)) return value.map(jsonText).join('-');
  const form = isObject(value) && Object.hasOwn(FORMS, key) ? FORMS[key]?.(value) : undefined;
  return form ?? JSON.stringify(x);
}

/** The chains a rule (`nft -j` rule body) jumps or goes to. */
export function jumpTargets(rule: Json): string[] {
  const expr = isObject(rule) && Array.isArray(rule['expr']) ? rule['expr'] : [];
  return expr.flatMap((x) => {
    const jump = isObject(x) ? (x['jump'] ?? x['goto']) : undefined;
    return isObject(jump) && typeof jump['target'] === 'string' ? [jump['target']] : [];
  });
}

/** Parses one listing of our table (full or terse `nft -j list table`). */
export function parseNftTable(json: string) {
  const objects = nftObjects(json);
  const names = objects.flatMap((o) => [o['set'], o['chain']].filter(ours).map((b) => b['name']));
  return {
    /** The line about the table's flags, when it has any: a dormant table turns off all its NAT. */
    flags: tableFlagsLine(objects),
    /** nft 1.0.6 cut the listing off at the table's flags: what the table holds is unseen. */
    unseen: objects.includes(UNREADABLE_TABLE),
    /** Names of the sets and chains in the table, ours and others'. */
    names: new Set(names.filter((n) => typeof n === 'string')) as ReadonlySet<string>,
    /** The objects in the table that the agent did not write, in listing order. */
    foreign: foreignObjects(objects),
    /** Each family's objects of ours: sets (elements in address order), chains, rules (in chain order). */
    families: { ipv4: familyObjects(objects, 'ipv4'), ipv6: familyObjects(objects, 'ipv6') },
  };
}

/** What one listing of our table shows. */
export type NftTableListing = Readonly<ReturnType<typeof parseNftTable>>;

/**
 * What read(family) reports as owned: for IPv4, the family the agent always manages, whose apply
 * also repairs the table, the table's own lines (see tableLines) first, then the family's.
 */
export function ownedNftLines(listing: NftTableListing, family: Family): string[] {
  const lines = canonicalLines(listing.families[family]);
  return family === 'ipv4' ? [...tableLines(listing), ...lines] : lines;
}

/** The `nft -j` bodies of a family's set (also one someone re-created) and chain, and of the rules in that chain. */
export function familyBodies(objects: readonly JsonObject[], family: Family): Record<'sets' | 'chains' | 'rules', JsonObject[]> {
  const n = NFT_NAMES[family];
  const bodies = (kind: string, key: string, name: string) => objects.map((o) => o[kind]).filter((b) => ours(b) && b[key] === name) as JsonObject[];
  return { sets: bodies('set', 'name', n.set), chains: bodies('chain', 'name', n.chain), rules: bodies('rule', 'chain', n.chain) };
}

/** A family's set, chain and rules, in that order whatever order nft listed them in. */
function familyObjects(objects: readonly JsonObject[], family: Family): NftObject[] {
  const n = NFT_NAMES[family];
  const bodies = familyBodies(objects, family);
  const sets = bodies.sets.map((set): NftObject => {
    const counter = Array.isArray(set['stmt']) && set['stmt'].some((st) => isObject(st) && 'counter' in st);
    const elements = Array.isArray(set['elem']) ? set['elem'].map(parseElement).sort(compareElements) : [];
    const flags = Array.isArray(set['flags']) ? set['flags'].map(jsonText).sort() : [];
    return { kind: 'set', name: n.set, type: listText(set['type'], ' . '), flags, counter, elements: elements.map((e) => e.text) };
  });
  const chains = bodies.chains.map((chain): NftObject => {
    const priority = typeof chain['prio'] === 'number' ? chain['prio'] : Number.NaN;
    const base = { type: jsonText(chain['type']), hook: jsonText(chain['hook']), priority, policy: jsonText(chain['policy']) };
    return chain['hook'] === undefined ? { kind: 'chain', name: n.chain } : { kind: 'chain', name: n.chain, base };
  });
  const rules = bodies.rules.map((rule): NftObject => {
    const expr = Array.isArray(rule['expr']) ? rule['expr'].map(jsonText).join(' ') : '';
    const comment = typeof rule['comment'] === 'string' ? ` comment ${JSON.stringify(rule['comment'])}` : '';
    return { kind: 'rule', chain: n.chain, text: `${expr}${comment}` };
  });
  return [...sets, ...chains, ...rules];
}

/** Table flags nft can print; anything else is nft 1.0.6's misprint (see CUT_AT_TABLE_FLAGS). */
const TABLE_FLAG_NAMES = new Set(['dormant', 'owner', 'persist']);

/** At most this many foreign objects get a line each; the plan deletes all of them. */
export const MAX_FOREIGN_LINES = 20;

/** The table's flags as a line, or undefined when it has none (nft prints no `flags` key then). */
function tableFlagsLine(objects: readonly JsonObject[]): string | undefined {
  const table = objects.map((o) => o['table']).find((t) => isObject(t) && t['family'] === NFT_TABLE_FAMILY && t['name'] === NFT_TABLE);
  if (!isObject(table) || !('flags' in table)) return undefined;
  const names = [table['flags']].flat().filter((f): f is string => typeof f === 'string');
  const readable = names.length > 0 && names.every((f) => TABLE_FLAG_NAMES.has(f));
  // A dormant table's chains see no packets: every rule in it, ours included, is off.
  return `table flags ${readable ? names.join(',') : 'set (nft 1.0.6 misprints which; dormant turns off all of the table)'}`;
}

/**
 * The objects in our table that are not the agent's sets and chains, in listing order: each with its
 * nft -j key (`chain`, `map`, `ct helper`, ...), name, handle (names may need quoting; handles never
 * do), the chains a chain's rules jump to (deleted after it), and a detail for people.
 */
function foreignObjects(objects: readonly JsonObject[]) {
  const rules = objects.map((o) => o['rule']).filter(ours);
  // Rules are their chain's; the table's and metainfo's bodies name no table, so ours() skips them.
  const entries = objects.map((o): [string, Json] => Object.entries(o)[0] ?? ['', undefined]);
  const bodies = entries.filter((e): e is [string, JsonObject] => e[0] !== 'rule' && ours(e[1]) && !isAgentObject(e[0], e[1]['name']));
  return bodies.map(([kind, body]) => {
    const name = jsonText(body['name']);
    const handle = typeof body['handle'] === 'number' ? body['handle'] : undefined;
    const chainRules = rules.filter((r) => kind === 'chain' && r['chain'] === name);
    const [type, hook, prio, policy] = ['type', 'hook', 'prio', 'policy'].map((k) => jsonText(body[k]));
    const base = body['hook'] === undefined ? '' : ` type ${type} hook ${hook} prio ${prio} policy ${policy}`;
    const types = kind === 'set' || kind === 'map' ? ` type ${type}${kind === 'map' ? ` : ${jsonText(body['map'])}` : ''}` : '';
    const detail = kind === 'chain' ? `${base}, ${chainRules.length} rule${chainRules.length === 1 ? '' : 's'}` : types;
    return { kind, name, handle, targets: chainRules.flatMap(jumpTargets), detail };
  });
}

/** One object in our table that the agent did not write: a renamed chain, someone's base chain, a map. */
export type NftForeignObject = Readonly<ReturnType<typeof foreignObjects>[number]>;

/** The table's own lines (its flags, the objects the agent did not write); none is ever wanted, so any line is drift. */
function tableLines({ flags, foreign }: NftTableListing): string[] {
  const lines = foreign.slice(0, MAX_FOREIGN_LINES).map((f) => `table holds ${f.kind} ${JSON.stringify(f.name)}${f.detail}, not the agent's`);
  if (foreign.length > MAX_FOREIGN_LINES) lines.push(`table holds ${foreign.length - MAX_FOREIGN_LINES} more objects that are not the agent's`);
  return flags === undefined ? lines : [flags, ...lines];
}
