// Parses `nft -j list table inet ip-masq-agent`, once, into what read() reports: our objects per
// family (model objects, whose canonical lines the drift check compares), and the table itself:
// its flags and the objects in it that are not ours.
// nft 1.0.6 prints interval elements as `{"prefix": {"addr", "len"}}`, a single address (/32,
// /128) as a plain string, and a non-CIDR interval as `{"range": [a, b]}`; all come back as CIDR
// text where they are one, so they compare equal to what was rendered.
// Anything this parser does not know is kept as JSON text: it then shows up as drift, and the
// next apply replaces it, instead of crashing the read.
import { formatIp, parseIp, type Family } from '../../net/cidr.js';
import { intervalText } from '../../net/intervals.js';
import { canonicalLines, type NftObject } from './model.js';
import { NFT_NAMES, NFT_TABLE, NFT_TABLE_FAMILY, NFT_TABLE_OWNER, isAgentObject } from './names.js';

type Json = unknown;

/** Whether a parsed JSON value is an object (not null, not an array). */
export function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function text(v: Json): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
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
export function nftObjects(json: string): Record<string, Json>[] {
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
export function ours(o: Json): o is Record<string, Json> {
  return isObject(o) && o['family'] === NFT_TABLE_FAMILY && o['table'] === NFT_TABLE;
}

/** An inclusive address range. */
interface Span {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

interface Element {
  readonly text: string;
  /** Present when the element is an address range (a CIDR block or not); used for the address-order sort. */
  readonly span?: Span;
}

const FULL_BITS: Record<Family, number> = { ipv4: 32, ipv6: 128 };

function tryIp(addr: string): { family: Family; value: bigint } | undefined {
  try {
    return parseIp(addr);
  } catch {
    // nft (inet_ntop) prints an address of ::ffff:0:0/96 as `::ffff:a.b.c.d`, which parseIp refuses
    // in a config; an interval we wrote may still start or end there.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
    const v4 = mapped ? tryIp(mapped[1]!) : undefined;
    return v4?.family === 'ipv4' ? { family: 'ipv6', value: (0xffffn << 32n) | v4.value } : undefined;
  }
}

/** A range as nft is given it: CIDR text when it is one block, else `a-b`. */
const spanElement = (span: Span): Element => ({ text: intervalText(span), span });

/** A set element (or anonymous-set item) as its canonical text, with its range when it is one. */
export function parseElement(e: Json): Element {
  if (typeof e === 'string') {
    const ip = tryIp(e);
    return ip ? spanElement({ family: ip.family, first: ip.value, last: ip.value }) : { text: e };
  }
  if (isObject(e)) {
    const { prefix, range, elem } = e;
    if (isObject(prefix) && typeof prefix['addr'] === 'string' && typeof prefix['len'] === 'number') {
      const [ip, len] = [tryIp(prefix['addr']), prefix['len']];
      const host = ip && Number.isInteger(len) && len >= 0 && len <= FULL_BITS[ip.family] ? (1n << BigInt(FULL_BITS[ip.family] - len)) - 1n : undefined;
      if (ip && host !== undefined && (ip.value & host) === 0n) return spanElement({ family: ip.family, first: ip.value, last: ip.value | host });
      return { text: `${prefix['addr']}/${len}` };
    }
    if (Array.isArray(range) && range.length === 2 && typeof range[0] === 'string' && typeof range[1] === 'string') {
      const [a, b] = [tryIp(range[0]), tryIp(range[1])];
      return a && b && a.family === b.family ? spanElement({ family: a.family, first: a.value, last: b.value }) : { text: `${range[0]}-${range[1]}` };
    }
    // Elements with a timeout or comment come wrapped as {"elem": {"val": ...}}.
    if (isObject(elem) && 'val' in elem) {
      const inner = parseElement(elem['val']);
      // A counter's values change with traffic: they are no state of ours.
      const extra = Object.keys(elem).filter((k) => k !== 'val' && k !== 'counter');
      return extra.length ? { ...inner, text: `${inner.text} ${JSON.stringify(elem)}` } : inner;
    }
  }
  return { text: JSON.stringify(e) };
}

function compareSpans(a: Span, b: Span): number {
  if (a.family !== b.family) return a.family === 'ipv4' ? -1 : 1;
  if (a.first !== b.first) return a.first < b.first ? -1 : 1;
  // The wider first, as compareCidrs orders blocks.
  return a.last === b.last ? 0 : a.last > b.last ? -1 : 1;
}

/** Address order for ranges and blocks, then anything else by text, so both sides of a compare agree. */
function compareElements(a: Element, b: Element): number {
  const byText = a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
  if (a.span && b.span) return compareSpans(a.span, b.span) || byText;
  if (a.span) return -1;
  if (b.span) return 1;
  return byText;
}

function exprText(x: Json): string {
  if (typeof x === 'string' || typeof x === 'number') return String(x);
  if (!isObject(x)) return JSON.stringify(x);
  const [key, value] = Object.entries(x)[0] ?? ['', null];
  // A bitwise and, as `meta mark & 0x00004000`: nft prints a mark operand as 8 hex digits.
  if (key === '&' && Array.isArray(value) && value.length === 2 && typeof value[1] === 'number') {
    return `${exprText(value[0])} & ${hex32(value[1])}`;
  }
  if (Object.keys(x).length !== 1 || !isObject(value)) {
    if (key === 'set' && Array.isArray(value)) return anonymousText(value.map(parseElement));
    if (key === 'range' && Array.isArray(value)) return value.map(exprText).join('-');
    return JSON.stringify(x);
  }
  switch (key) {
    case 'meta':
      return `meta ${text(value['key'])}`;
    case 'payload':
      return `${text(value['protocol'])} ${text(value['field'])}`;
    case 'fib': {
      const flags = Array.isArray(value['flags']) ? value['flags'].map(text).join(' . ') : text(value['flags']);
      return `fib ${flags} ${text(value['result'])}`;
    }
    case 'numgen': {
      const offset = value['offset'] ? ` offset ${text(value['offset'])}` : '';
      return `numgen ${text(value['mode'])} mod ${text(value['mod'])}${offset}`;
    }
    case 'prefix':
      return `${text(value['addr'])}/${text(value['len'])}`;
    case 'map':
      return `${exprText(value['key'])} map ${mapText(value['data'])}`;
    default:
      return JSON.stringify(x);
  }
}

/** An anonymous map `{ key : value, ... }`, keys as set elements in address order, addresses canonical. */
function mapText(data: Json): string {
  const pairs = isObject(data) && Array.isArray(data['set']) ? data['set'] : undefined;
  if (pairs === undefined) return JSON.stringify(data);
  const items = pairs.map((pair) => {
    if (!Array.isArray(pair) || pair.length !== 2) return { text: JSON.stringify(pair) };
    const key = parseElement(pair[0]);
    const value = typeof pair[1] === 'string' ? tryIp(pair[1]) : undefined;
    return { ...key, text: `${key.text} : ${value === undefined ? exprText(pair[1]) : formatIp(value)}` };
  });
  return anonymousText(items);
}

/** `{ a, b }`: the elements in address order, as nft prints an anonymous set or map. */
function anonymousText(items: Element[]): string {
  const texts = items.sort(compareElements).map((e) => e.text);
  return `{ ${texts.join(', ')} }`;
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function flagsText(flags: Json): string {
  if (flags === undefined) return '';
  return ` ${Array.isArray(flags) ? flags.map(text).join(',') : text(flags)}`;
}

function statementText(s: Json): string {
  if (!isObject(s) || Object.keys(s).length !== 1) return JSON.stringify(s);
  const [key, value] = Object.entries(s)[0]!;
  switch (key) {
    case 'match': {
      if (!isObject(value)) break;
      const left = value['left'];
      // nft spells out `==` after a bitwise and, and prints its number in hex.
      if (isObject(left) && '&' in left && typeof value['right'] === 'number') {
        return `${exprText(left)} ${text(value['op'])} ${hex32(value['right'])}`;
      }
      const op = value['op'] === '==' ? '' : `${text(value['op'])} `;
      // An address, prefix or range (nft turns a one-element anonymous set into one) as set elements read.
      const right = value['right'];
      const element = typeof right === 'string' && right.startsWith('@') ? undefined : parseElement(right);
      return `${exprText(left)} ${op}${element?.span ? element.text : exprText(right)}`;
    }
    case 'return':
    case 'accept':
    case 'drop':
    case 'continue':
      if (value === null) return key;
      break;
    case 'jump':
    case 'goto':
      if (isObject(value)) return `${key} ${text(value['target'])}`;
      break;
    case 'snat': {
      // The forms we write: the source bound to itself (`snat ip to ip saddr`), and the address
      // looked up by destination (`snat ip to ip daddr map { ... }`), with ports and flags.
      if (!isObject(value) || typeof value['family'] !== 'string') break;
      const known = Object.keys(value).every((k) => k === 'family' || k === 'addr' || k === 'port' || k === 'flags');
      const addr = value['addr'];
      if (!known || !isObject(addr) || !(isObject(addr['payload']) || isObject(addr['map']))) break;
      const port = value['port'] === undefined ? '' : `:${exprText(value['port'])}`;
      return `snat ${value['family']} to ${exprText(addr)}${port}${flagsText(value['flags'])}`;
    }
    case 'counter':
      // Counter values change with traffic: only the counter's presence is state.
      return 'counter';
    case 'masquerade': {
      if (value === null) return 'masquerade';
      if (!isObject(value)) break;
      const port = value['port'] === undefined ? '' : ` to :${exprText(value['port'])}`;
      const known = Object.keys(value).every((k) => k === 'port' || k === 'flags');
      if (!known) break;
      return `masquerade${port}${flagsText(value['flags'])}`;
    }
    default:
      break;
  }
  return JSON.stringify(s);
}

/** The chains a rule (`nft -j` rule body) jumps or goes to. */
export function jumpTargets(rule: Json): string[] {
  const expr = isObject(rule) && Array.isArray(rule['expr']) ? rule['expr'] : [];
  return expr.flatMap((x) => {
    const jump = isObject(x) ? (x['jump'] ?? x['goto']) : undefined;
    return isObject(jump) && typeof jump['target'] === 'string' ? [jump['target']] : [];
  });
}

function ruleText(rule: Record<string, Json>): string {
  const expr = Array.isArray(rule['expr']) ? rule['expr'].map(statementText).join(' ') : '';
  const comment = typeof rule['comment'] === 'string' ? ` comment ${JSON.stringify(rule['comment'])}` : '';
  return `${expr}${comment}`;
}

/** What one listing of our table shows (full or terse `nft -j list table`), parsed once. */
export interface NftTableListing {
  /** The line about the table's flags, when it has any: a dormant table turns off all its NAT. */
  readonly flags: string | undefined;
  /** nft 1.0.6 cut the listing off at the table's flags: what the table holds is unseen. */
  readonly unseen: boolean;
  /** Names of the sets and chains in the table, ours and others'. */
  readonly names: ReadonlySet<string>;
  /** The objects in the table that the agent did not write, in listing order. */
  readonly foreign: readonly NftForeignObject[];
  /** Each family's objects of ours: sets (elements in address order), chains, rules (in chain order). */
  readonly families: Readonly<Record<Family, readonly NftObject[]>>;
}

/** Parses a listing of our table. */
export function parseNftTable(json: string): NftTableListing {
  const objects = nftObjects(json);
  const names = new Set<string>();
  for (const o of objects) {
    for (const kind of ['set', 'chain'] as const) {
      const body = o[kind];
      if (ours(body) && typeof body['name'] === 'string') names.add(body['name']);
    }
  }
  return {
    flags: tableFlagsLine(objects),
    unseen: objects.includes(UNREADABLE_TABLE),
    names,
    foreign: foreignObjects(objects),
    families: { ipv4: familyObjects(objects, 'ipv4'), ipv6: familyObjects(objects, 'ipv6') },
  };
}

/** The canonical lines of one family's objects in our table (the other family's and unknown objects left out). */
export function parseNftJson(json: string, family: Family): string[] {
  return canonicalLines(parseNftTable(json).families[family]);
}

/**
 * What read(family) reports as owned: for the family that owns the table (NFT_TABLE_OWNER), the
 * table's own lines (see tableLines) first, then the family's.
 */
export function ownedNftLines(listing: NftTableListing, family: Family): string[] {
  const lines = canonicalLines(listing.families[family]);
  return family === NFT_TABLE_OWNER ? [...tableLines(listing), ...lines] : lines;
}

function familyObjects(objects: readonly Record<string, Json>[], family: Family): NftObject[] {
  const n = NFT_NAMES[family];
  const sets: NftObject[] = [];
  const chains: NftObject[] = [];
  const rules: NftObject[] = [];
  for (const o of objects) {
    const set = o['set'];
    if (ours(set) && set['name'] === n.set) {
      const type = Array.isArray(set['type']) ? set['type'].map(text).join(' . ') : text(set['type']);
      const flags = Array.isArray(set['flags']) ? set['flags'].map(text).sort() : [];
      const counter = Array.isArray(set['stmt']) && set['stmt'].some((st) => isObject(st) && 'counter' in st);
      const elements = Array.isArray(set['elem']) ? set['elem'].map(parseElement).sort(compareElements) : [];
      sets.push({ kind: 'set', name: n.set, type, flags, counter, elements: elements.map((e) => e.text) });
      continue;
    }
    const chain = o['chain'];
    if (ours(chain) && chain['name'] === n.chain) {
      const priority = typeof chain['prio'] === 'number' ? chain['prio'] : Number.NaN;
      const base = { type: text(chain['type']), hook: text(chain['hook']), priority, policy: text(chain['policy']) };
      chains.push(chain['hook'] === undefined ? { kind: 'chain', name: n.chain } : { kind: 'chain', name: n.chain, base });
      continue;
    }
    const rule = o['rule'];
    if (ours(rule) && rule['chain'] === n.chain) rules.push({ kind: 'rule', chain: n.chain, text: ruleText(rule) });
  }
  return [...sets, ...chains, ...rules];
}

/** Table flags nft can print; anything else is nft 1.0.6's misprint (see CUT_AT_TABLE_FLAGS). */
const TABLE_FLAG_NAMES = new Set(['dormant', 'owner', 'persist']);

/** At most this many foreign objects get a line each; the plan deletes all of them. */
export const MAX_FOREIGN_LINES = 20;

/** The prefix of every line about the table itself. */
const NFT_TABLE_LINE_PREFIX = 'table ';

/** One object in our table that the agent did not write: a renamed chain, someone's base chain, a map. */
export interface NftForeignObject {
  /** The key nft -j prints it under: `chain`, `set`, `map`, `counter`, `ct helper`, ... */
  readonly kind: string;
  /** Its name in the table, as nft lists it. */
  readonly name: string;
  /** The kernel's handle, by which apply deletes it (names may need quoting; handles never do). */
  readonly handle: number | undefined;
  /** For a chain: the chains its rules jump or go to, which must be deleted after it. */
  readonly targets: readonly string[];
  /** One line for people: the chain's hook and priority, the map's types, the rule count. */
  readonly detail: string;
}

/** The table's flags as a line, or undefined when it has none (nft prints no `flags` key then). */
function tableFlagsLine(objects: readonly Record<string, Json>[]): string | undefined {
  const table = objects.map((o) => o['table']).find((t) => isObject(t) && t['family'] === NFT_TABLE_FAMILY && t['name'] === NFT_TABLE);
  if (!isObject(table) || !('flags' in table)) return undefined;
  const raw = table['flags'];
  const names = (Array.isArray(raw) ? raw : [raw]).filter((f): f is string => typeof f === 'string');
  const readable = names.length > 0 && names.every((f) => TABLE_FLAG_NAMES.has(f));
  // A dormant table's chains see no packets: every rule in it, ours included, is off.
  return `${NFT_TABLE_LINE_PREFIX}flags ${readable ? names.join(',') : 'set (nft 1.0.6 misprints which; dormant turns off all of the table)'}`;
}

/** The objects in our table that are not the agent's sets and chains, in listing order. */
function foreignObjects(objects: readonly Record<string, Json>[]): NftForeignObject[] {
  const rules = objects.map((o) => o['rule']).filter(ours);
  const found: NftForeignObject[] = [];
  for (const o of objects) {
    const [kind, body] = Object.entries(o)[0] ?? ['', undefined];
    if (kind === 'table' || kind === 'rule' || kind === 'metainfo' || !ours(body) || isAgentObject(kind, body['name'])) continue;
    const name = text(body['name']);
    const handle = typeof body['handle'] === 'number' ? body['handle'] : undefined;
    let detail = '';
    let targets: string[] = [];
    if (kind === 'chain') {
      const chainRules = rules.filter((r) => r['chain'] === name);
      targets = chainRules.flatMap(jumpTargets);
      const base = body['hook'] === undefined ? '' : ` type ${text(body['type'])} hook ${text(body['hook'])} prio ${text(body['prio'])} policy ${text(body['policy'])}`;
      detail = `${base}, ${chainRules.length} rule${chainRules.length === 1 ? '' : 's'}`;
    } else if (kind === 'set' || kind === 'map') {
      detail = ` type ${text(body['type'])}${kind === 'map' ? ` : ${text(body['map'])}` : ''}`;
    }
    found.push({ kind, name, handle, targets, detail });
  }
  return found;
}

/**
 * The lines that stand for the table itself: its flags (a dormant table turns all its NAT off)
 * and every object in it the agent did not write (a renamed chain, a base chain of someone else's
 * that masquerades, a map named like our set). None is ever wanted, so any line is drift.
 */
function tableLines({ flags, foreign }: NftTableListing): string[] {
  const lines = foreign.slice(0, MAX_FOREIGN_LINES).map((f) => `${NFT_TABLE_LINE_PREFIX}holds ${f.kind} ${JSON.stringify(f.name)}${f.detail}, not the agent's`);
  if (foreign.length > MAX_FOREIGN_LINES) lines.push(`${NFT_TABLE_LINE_PREFIX}holds ${foreign.length - MAX_FOREIGN_LINES} more objects that are not the agent's`);
  return flags === undefined ? lines : [flags, ...lines];
}
