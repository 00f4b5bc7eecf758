// A scripted stand-in for the `nft` binary, holding one table in memory. It understands exactly
// the commands and rule grammar the nftables backend emits, with the kernel's rules that matter
// here: a batch applies all or nothing, deleting a missing object fails, a set still referenced
// by a rule cannot be deleted, overlapping intervals are refused, and a command naming any other
// table fails. Its `-j list table` output matches real nft 1.0.6 (checked against the captured
// list.json goldens), so unit tests exercise the real parser. Others' changes to the table can be
// made as a person would (`nft add table ... { flags dormant; }`, a chain or map of theirs,
// `nft rename chain`), with the kernel's answers measured on 6.18: `add table` wakes a dormant
// table, a base chain in the batch that wakes it is refused (Invalid argument), a chain still
// jumped to cannot be deleted, and nft 1.0.6 misprints a table's flags (see listJson).
import { CommandError } from '../../src/errors.js';
import { classifyFailure, type CommandResult, type Runner } from '../../src/exec/runner.js';
import { formatSavedCidr } from '../../src/backends/iptables/render.js';
import { cidrLast, parseIp, type Family, type IpAddress } from '../../src/net/cidr.js';
import { intervalAsCidr } from '../../src/net/intervals.js';

/** A set element as the kernel holds it: an inclusive address range. */
interface Span {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

interface FakeSet {
  handle: number;
  type: string;
  flags: string[];
  /** `counter;` in the spec: every element carries a counter (a fake one stays at 0). */
  counter: boolean;
  elements: Span[];
}

interface FakeChain {
  handle: number;
  base?: { type: string; hook: string; prio: number; policy: string };
  rules: { handle: number; text: string }[];
}

interface FakeMap {
  handle: number;
  type: string;
  map: string;
}

interface FakeTable {
  handle: number;
  dormant: boolean;
  sets: Map<string, FakeSet>;
  maps: Map<string, FakeMap>;
  chains: Map<string, FakeChain>;
}

/** The fake nft: its runner, what it was asked to do, and its table for inspection. */
export interface FakeNft {
  readonly runner: Runner;
  /** Every argv run, in order. */
  readonly calls: (readonly string[])[];
  /** Every script given to `nft -f -`, in order (failed ones included). */
  readonly scripts: string[];
  /** Whether our table exists. */
  hasTable(): boolean;
  /** Makes the next `nft -f -` fail with this stderr, leaving the table as it was. */
  failNextScript(stderr: string): void;
}

const TABLE = 'inet ip-masq-agent';
const BITS = { ipv4: 32, ipv6: 128 } as const;

class NftError extends Error {}

function clone(t: FakeTable | undefined): FakeTable | undefined {
  if (!t) return undefined;
  return {
    handle: t.handle,
    dormant: t.dormant,
    maps: new Map([...t.maps].map(([k, m]) => [k, { ...m }])),
    sets: new Map([...t.sets].map(([k, s]) => [k, { ...s, flags: [...s.flags], elements: [...s.elements] }])),
    chains: new Map([...t.chains].map(([k, c]) => [k, { ...c, rules: [...c.rules] }])),
  };
}

const CHAIN_SPEC = /^\{ type (\w+) hook (\w+) priority (\w+); policy (\w+); \}$/;
const SET_SPEC = /^\{ type (\w+); flags (\w+);( counter;)? \}$/;
const MAP_SPEC = /^\{ type (\w+) : (\w+); \}$/;

/** An address as nft reads it: also the ::ffff:a.b.c.d forms that parseIp refuses in a config. */
function parseAddress(text: string): IpAddress {
  try {
    return parseIp(text);
  } catch (e) {
    const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text)?.[1];
    if (v4 !== undefined) return { family: 'ipv6', value: (0xffffn << 32n) | parseIp(v4).value };
    const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(text);
    if (hex) return { family: 'ipv6', value: (0xffffn << 32n) | (BigInt(`0x${hex[1]}`) << 16n) | BigInt(`0x${hex[2]}`) };
    throw e;
  }
}

/** An address as nft prints it (inet_ntop: ::ffff:a.b.c.d and ::a.b.c.d forms included). */
function addressText(ip: IpAddress): string {
  const text = formatSavedCidr({ family: ip.family, base: ip.value, prefix: ip.family === 'ipv4' ? 32 : 128 });
  return text.slice(0, text.lastIndexOf('/'));
}

/** Parses `10.0.0.0/8`, `10.0.0.0-10.8.255.255` or a bare address, as nft reads an element. */
function parseSpan(text: string, family?: Family): Span {
  try {
    const dash = text.indexOf('-');
    if (dash > 0) {
      const [a, b] = [parseAddress(text.slice(0, dash)), parseAddress(text.slice(dash + 1))];
      if (a.family !== b.family || b.value < a.value) throw new NftError(`Error: invalid range ${text}`);
      return check({ family: a.family, first: a.value, last: b.value });
    }
    const slash = text.indexOf('/');
    const ip = parseAddress(slash < 0 ? text : text.slice(0, slash));
    const prefix = slash < 0 ? BITS[ip.family] : Number(text.slice(slash + 1));
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > BITS[ip.family]) throw new NftError(`Error: invalid prefix in ${text}`);
    const c = { family: ip.family, base: ip.value, prefix };
    if (intervalAsCidr(c.family, c.base, cidrLast(c)) === undefined) throw new NftError(`Error: ${text} is not a network address`);
    return check({ family: c.family, first: c.base, last: cidrLast(c) });
  } catch (e) {
    if (e instanceof NftError) throw e;
    throw new NftError(`Error: syntax error, invalid element ${text}`);
  }
  function check(sp: Span): Span {
    if (family !== undefined && sp.family !== family) throw new NftError(`Error: datatype mismatch, element ${text} is not ${family}`);
    return sp;
  }
}

function compareSpans(a: Span, b: Span): number {
  return a.first < b.first ? -1 : a.first > b.first ? 1 : a.last < b.last ? -1 : a.last > b.last ? 1 : 0;
}

/** Refuses overlapping spans, as the kernel does for an interval set without auto-merge. */
function assertDisjoint(spans: readonly Span[]): void {
  const sorted = [...spans].sort(compareSpans);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1]!.last >= sorted[i]!.first) throw new NftError('Error: conflicting intervals specified');
  }
}

/** What nft does to an anonymous set: overlapping and adjacent elements merge (auto-merge). */
function autoMerge(spans: readonly Span[]): Span[] {
  const out: Span[] = [];
  for (const sp of [...spans].sort(compareSpans)) {
    const prev = out[out.length - 1];
    if (prev !== undefined && sp.first <= prev.last + 1n) out[out.length - 1] = { ...prev, last: sp.last > prev.last ? sp.last : prev.last };
    else out.push(sp);
  }
  return out;
}

/** An element as nft 1.0.6 prints it in JSON: a bare address, a prefix, or a range. */
function spanJson(sp: Span): unknown {
  const addr = addressText({ family: sp.family, value: sp.first });
  if (sp.first === sp.last) return addr;
  const cidr = intervalAsCidr(sp.family, sp.first, sp.last);
  if (cidr) return { prefix: { addr, len: cidr.prefix } };
  return { range: [addr, addressText({ family: sp.family, value: sp.last })] };
}

/** The items of a `{ a, b }` block at the start of `text`, and what follows it. */
function takeBraces(text: string): { items: string[]; rest: string } | undefined {
  if (!text.startsWith('{ ')) return undefined;
  const end = text.indexOf('}');
  if (end < 0) throw new NftError('Error: syntax error, unterminated set');
  const items = text
    .slice(1, end)
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
  if (items.length === 0) throw new NftError('Error: syntax error, unexpected }');
  return { items, rest: text.slice(end + 1) };
}

const FAMILY_OF: Record<string, Family> = { ip: 'ipv4', ip6: 'ipv6' };

/** The JSON nft 1.0.6 prints for one rule of the grammar the backend emits. */
function ruleExpr(text: string): unknown[] {
  const out: unknown[] = [];
  let rest = text.trim();
  let l4proto = false;
  const take = (re: RegExp): RegExpExecArray | undefined => {
    const m = re.exec(rest);
    if (!m) return undefined;
    rest = rest.slice(m[0].length).trimStart();
    return m;
  };
  const ports = (): unknown => {
    const m = /^:(\d+)(?:-(\d+))?/.exec(rest);
    if (!m) return undefined;
    // nft: "transport protocol mapping is only valid after transport protocol match".
    if (!l4proto) throw new NftError('Error: transport protocol mapping is only valid after transport protocol match');
    rest = rest.slice(m[0].length).trimStart();
    return m[2] === undefined ? Number(m[1]) : { range: [Number(m[1]), Number(m[2])] };
  };
  while (rest.length > 0) {
    let m: RegExpExecArray | undefined;
    if ((m = take(/^meta (\w+) (?:(!=) )?(\w+)/))) {
      if (m[1] === 'l4proto') l4proto = true;
      out.push({ match: { op: m[2] ?? '==', left: { meta: { key: m[1] } }, right: m[3] } });
    } else if ((m = take(/^fib daddr type (\w+)/))) {
      out.push({ match: { op: '==', left: { fib: { result: 'type', flags: ['daddr'] } }, right: m[1] } });
    } else if ((m = take(/^(ip6?) daddr (@\w+)/))) {
      out.push({ match: { op: '==', left: { payload: { protocol: m[1], field: 'daddr' } }, right: m[2] } });
    } else if ((m = take(/^(ip6?) saddr != /))) {
      const block = takeBraces(rest);
      const one = block ? undefined : /^\S+/.exec(rest)?.[0];
      if (!block && one === undefined) throw new NftError(`Error: syntax error, unexpected ${rest.split(' ')[0]}`);
      rest = block ? block.rest.trimStart() : rest.slice(one!.length).trimStart();
      const spans = autoMerge((block?.items ?? [one!]).map((e) => parseSpan(e, FAMILY_OF[m![1]!])));
      // Like nft: an anonymous set of one element becomes a plain comparison.
      const right = spans.length === 1 ? spanJson(spans[0]!) : { set: spans.map(spanJson) };
      out.push({ match: { op: '!=', left: { payload: { protocol: m[1], field: 'saddr' } }, right } });
    } else if ((m = take(/^numgen random mod (\d+) < (\d+)/))) {
      out.push({ match: { op: '<', left: { numgen: { mode: 'random', mod: Number(m[1]), offset: 0 } }, right: Number(m[2]) } });
    } else if ((m = take(/^masquerade(?: to :(\d+)(?:-(\d+))?)?(?: (fully-random))?$/))) {
      const port = m[1] === undefined ? undefined : m[2] === undefined ? Number(m[1]) : { range: [Number(m[1]), Number(m[2])] };
      const body = { ...(port === undefined ? {} : { port }), ...(m[3] ? { flags: m[3] } : {}) };
      out.push({ masquerade: Object.keys(body).length ? body : null });
    } else if ((m = take(/^meta mark & 0x([0-9a-f]{8}) == 0x([0-9a-f]{8})/))) {
      out.push({ match: { op: '==', left: { '&': [{ meta: { key: 'mark' } }, parseInt(m[1]!, 16)] }, right: parseInt(m[2]!, 16) } });
    } else if ((m = take(/^snat (ip6?) to (ip6?) saddr$/))) {
      out.push({ snat: { family: m[1], addr: { payload: { protocol: m[2], field: 'saddr' } } } });
    } else if ((m = take(/^snat (ip6?) to (ip6?) daddr map /))) {
      const block = takeBraces(rest);
      if (!block || m[1] !== m[2]) throw new NftError(`Error: syntax error, unexpected ${rest.split(' ')[0]}`);
      rest = block.rest;
      const family = FAMILY_OF[m[1]!]!;
      const pairs = block.items.map((item) => {
        const [key, value, extra] = item.split(' : ');
        if (key === undefined || value === undefined || extra !== undefined) throw new NftError(`Error: syntax error in map element ${item}`);
        const to = parseSpan(value, family);
        if (to.first !== to.last) throw new NftError(`Error: ${value} is not an address`);
        return { key: parseSpan(key, family), to: addressText({ family, value: to.first }) };
      });
      assertDisjoint(pairs.map((p) => p.key));
      pairs.sort((a, b) => compareSpans(a.key, b.key));
      const port = ports();
      rest = rest.trimStart();
      const flags = take(/^fully-random$/) ? { flags: 'fully-random' } : {};
      const map = { map: { key: { payload: { protocol: m[1], field: 'daddr' } }, data: { set: pairs.map((p) => [spanJson(p.key), p.to]) } } };
      out.push({ snat: { family: m[1], addr: map, ...(port === undefined ? {} : { port }), ...flags } });
      if (rest.length > 0) throw new NftError(`Error: syntax error, unexpected ${rest.split(' ')[0]}`);
    } else if (take(/^counter(?= )/)) {
      out.push({ counter: { packets: 0, bytes: 0 } });
    } else if ((m = take(/^(jump|goto) (\w+)$/))) {
      out.push({ [m[1]!]: { target: m[2] } });
    } else if ((m = take(/^return$/))) {
      out.push({ return: null });
    } else {
      throw new NftError(`Error: syntax error, unexpected ${rest.split(' ')[0]}`);
    }
  }
  return out;
}

/** Creates a fake nft with no table. */
export function createFakeNft(): FakeNft {
  let table: FakeTable | undefined;
  let nextHandle = 1;
  const calls: (readonly string[])[] = [];
  const scripts: string[] = [];
  let pendingFailure: string | undefined;
  /** Whether the batch being run began with a dormant table. */
  let wakingBatch = false;

  const needTable = (t: FakeTable | undefined): FakeTable => {
    if (!t) throw new NftError('Error: No such file or directory; did you mean table ‘ip-masq-agent’ in family inet?');
    return t;
  };

  /** Applies one command to the working copy; returns it (the table may be created or deleted). */
  const exec = (t: FakeTable | undefined, cmd: string, elements: string[]): FakeTable | undefined => {
    const m = /^(add|delete|flush) (table|chain|set|map|element|rule) inet (\S+)(?: (\S+))?(?: (.*))?$/.exec(cmd);
    if (!m) throw new NftError(`Error: syntax error in "${cmd}"`);
    const [, verb, kind, tableName, , rest = ''] = m;
    let name = m[4] ?? '';
    if (`inet ${tableName}` !== TABLE) throw new NftError(`fake nft: refusing to touch table inet ${tableName}`);
    const key = `${verb} ${kind}`;
    if (key === 'add table') {
      if (name !== '' && `${name} ${rest}` !== '{ flags dormant; }') throw new NftError(`Error: syntax error in table spec "${name} ${rest}"`);
      // Measured: `add table` without flags wakes a dormant table; with `flags dormant` puts it to sleep.
      const dormant = name !== '';
      return t ? { ...t, dormant } : { handle: nextHandle++, dormant, sets: new Map(), maps: new Map(), chains: new Map() };
    }
    if (key === 'delete table') {
      needTable(t);
      return undefined;
    }
    const tab = needTable(t);
    switch (key) {
      case 'add chain': {
        const spec = rest ? CHAIN_SPEC.exec(rest) : undefined;
        if (rest && !spec) throw new NftError(`Error: syntax error in chain spec "${rest}"`);
        const base = spec ? { type: spec[1]!, hook: spec[2]!, prio: spec[3] === 'srcnat' ? 100 : Number(spec[3]), policy: spec[4]! } : undefined;
        // Measured (kernel 6.18): the batch that wakes a dormant table may not add a base chain.
        if (base && wakingBatch && !tab.dormant) throw new NftError('Error: Could not process rule: Invalid argument');
        const old = tab.chains.get(name);
        if (old) {
          if (base && JSON.stringify(old.base) !== JSON.stringify(base)) throw new NftError('Error: Could not process rule: Operation not supported');
        } else {
          tab.chains.set(name, { handle: nextHandle++, ...(base ? { base } : {}), rules: [] });
        }
        return tab;
      }
      case 'delete chain': {
        const target = name === 'handle' ? [...tab.chains].find(([, c]) => String(c.handle) === rest)?.[0] : name;
        if (target === undefined || !tab.chains.has(target)) throw new NftError('Error: Could not process rule: No such file or directory');
        for (const [other, c] of tab.chains) {
          if (other !== target && c.rules.some((r) => new RegExp(`^(jump|goto) ${target}$`).test(r.text))) throw new NftError('Error: Could not process rule: Device or resource busy');
        }
        tab.chains.delete(target);
        return tab;
      }
      case 'add map': {
        const spec = MAP_SPEC.exec(rest);
        if (!spec) throw new NftError(`Error: syntax error in map spec "${rest}"`);
        if (tab.sets.has(name) || tab.maps.has(name)) throw new NftError('Error: Could not process rule: File exists');
        tab.maps.set(name, { handle: nextHandle++, type: spec[1]!, map: spec[2]! });
        return tab;
      }
      case 'delete map':
        if (!tab.maps.delete(name)) throw new NftError('Error: Could not process rule: No such file or directory');
        return tab;
      case 'add set': {
        const spec = SET_SPEC.exec(rest);
        if (!spec) throw new NftError(`Error: syntax error in set spec "${rest}"`);
        // nft checks the batch against its own view first: a map of this name is not a set.
        if (tab.maps.has(name)) throw new NftError("Error: You must add 'flags interval' to your map declaration if you want to add prefix elements");
        const old = tab.sets.get(name);
        const counter = spec[3] !== undefined;
        if (old && (old.type !== spec[1] || old.flags.join() !== spec[2] || old.counter !== counter)) throw new NftError('Error: Could not process rule: File exists');
        if (!old) tab.sets.set(name, { handle: nextHandle++, type: spec[1]!, flags: [spec[2]!], counter, elements: [] });
        return tab;
      }
      case 'delete set': {
        if (name === 'handle') {
          // By handle, `delete set` deletes a set or a map (nft has no `delete map ... handle`).
          const map = [...tab.maps].find(([, x]) => String(x.handle) === rest)?.[0];
          if (map !== undefined) {
            tab.maps.delete(map);
            return tab;
          }
          name = [...tab.sets].find(([, x]) => String(x.handle) === rest)?.[0] ?? '';
        }
        if (!tab.sets.has(name)) throw new NftError('Error: Could not process rule: No such file or directory');
        for (const c of tab.chains.values()) {
          if (c.rules.some((r) => r.text.includes(`@${name}`))) throw new NftError('Error: Could not process rule: Device or resource busy');
        }
        tab.sets.delete(name);
        return tab;
      }
      case 'flush set': {
        const set = tab.sets.get(name);
        if (!set) throw new NftError('Error: Could not process rule: No such file or directory');
        set.elements = [];
        return tab;
      }
      case 'add element': {
        const set = tab.sets.get(name);
        if (!set) throw new NftError('Error: Could not process rule: No such file or directory');
        const family = set.type === 'ipv4_addr' ? 'ipv4' : 'ipv6';
        const all = [...set.elements, ...elements.map((e) => parseSpan(e, family))].sort(compareSpans);
        assertDisjoint(all);
        set.elements = all;
        return tab;
      }
      case 'add rule': {
        const chain = tab.chains.get(name);
        if (!chain) throw new NftError('Error: Could not process rule: No such file or directory');
        ruleExpr(rest);
        for (const ref of rest.match(/@\w+/g) ?? []) {
          if (!tab.sets.has(ref.slice(1))) throw new NftError(`Error: Could not process rule: Set ‘${ref.slice(1)}’ does not exist`);
        }
        chain.rules.push({ handle: nextHandle++, text: rest });
        return tab;
      }
      default:
        throw new NftError(`fake nft: unsupported command "${cmd}"`);
    }
  };

  const runScript = (script: string): void => {
    const lines = script.split('\n');
    let work = clone(table);
    wakingBatch = table?.dormant === true;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      const elements: string[] = [];
      if (line.endsWith('{') && line.startsWith('add element')) {
        for (i++; i < lines.length && lines[i]!.trim() !== '}'; i++) {
          const e = lines[i]!.trim().replace(/,$/, '');
          if (e) elements.push(e);
        }
        work = exec(work, line.slice(0, -1).trim(), elements);
        continue;
      }
      work = exec(work, line, elements);
    }
    table = work;
  };

  const listJson = (terse: boolean): string => {
    const t = needTable(table);
    const common = { family: 'inet', table: 'ip-masq-agent' };
    const metainfo = { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } };
    // nft 1.0.6 prints the flags of a dormant table from freed memory: measured, a stray string
    // when the table holds objects, and a document cut off after `"flags": ` when it is empty.
    if (t.dormant && t.sets.size + t.maps.size + t.chains.size === 0) {
      return `{"nftables": [${JSON.stringify(metainfo)}, {"table": {"family": "inet", "name": "ip-masq-agent", "handle": ${t.handle}, "flags": \n`;
    }
    const out: unknown[] = [metainfo, { table: { family: 'inet', name: 'ip-masq-agent', handle: t.handle, ...(t.dormant ? { flags: 'ipv4_addr' } : {}) } }];
    for (const [name, s] of t.sets) {
      const element = (sp: Span): unknown => (s.counter ? { elem: { val: spanJson(sp), counter: { packets: 0, bytes: 0 } } } : spanJson(sp));
      const elem = !terse && s.elements.length ? { elem: s.elements.map(element) } : {};
      const stmt = s.counter ? { stmt: [{ counter: null }] } : {};
      out.push({ set: { family: 'inet', name, table: 'ip-masq-agent', type: s.type, handle: s.handle, flags: s.flags, ...elem, ...stmt } });
    }
    for (const [name, x] of t.maps) out.push({ map: { family: 'inet', name, table: 'ip-masq-agent', type: x.type, handle: x.handle, map: x.map } });
    // Like nft: every set, then every chain, then every chain's rules.
    for (const [name, c] of t.chains) out.push({ chain: { ...common, name, handle: c.handle, ...(c.base ?? {}) } });
    for (const [name, c] of t.chains) {
      for (const r of c.rules) out.push({ rule: { ...common, chain: name, handle: r.handle, expr: ruleExpr(r.text) } });
    }
    return JSON.stringify({ nftables: out });
  };

  const chainsJson = (): string => {
    const chains = [...(table?.chains ?? [])].map(([name, c]) => ({ chain: { family: 'inet', table: 'ip-masq-agent', name, handle: c.handle, ...(c.base ?? {}) } }));
    return JSON.stringify({ nftables: [{ metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } }, ...chains] });
  };

  const fail = (argv: readonly string[], stderr: string): never => {
    // Classified as the runner classifies nft's own words.
    throw new CommandError(argv, 1, `${stderr}\n`, classifyFailure(1, stderr), `${argv.join(' ')}: exit code 1: ${stderr}`);
  };

  const runner: Runner = async (argv, options = {}) => {
    calls.push([...argv]);
    const ok = (stdout = ''): CommandResult => ({ stdout, stderr: '', exitCode: 0 });
    const args = argv.slice(1).join(' ');
    if (argv[0] !== 'nft') throw new Error(`fake nft cannot run ${argv.join(' ')}`);
    try {
      if (args === '-f -') {
        const script = options.input ?? '';
        scripts.push(script);
        if (pendingFailure !== undefined) {
          const stderr = pendingFailure;
          pendingFailure = undefined;
          throw new NftError(stderr);
        }
        runScript(script);
        return ok();
      }
      if (args === 'list tables') return ok(table === undefined ? '' : `table ${TABLE}\n`);
      if (args === `-j list table ${TABLE}`) return ok(listJson(false));
      if (args === `-j -t list table ${TABLE}`) return ok(listJson(true));
      // Like nft: every table's chains, without rules; the fake holds only ours.
      if (args === '-j list chains') return ok(chainsJson());
      if (args === `delete table ${TABLE}`) {
        needTable(table);
        table = undefined;
        return ok();
      }
      const rename = new RegExp(`^rename chain ${TABLE} (\\w+) (\\w+)$`).exec(args);
      if (rename) {
        const work = clone(table);
        const chain = needTable(work).chains.get(rename[1]!);
        if (!chain || work!.chains.has(rename[2]!)) throw new NftError('Error: Could not process rule: No such file or directory');
        work!.chains.delete(rename[1]!);
        work!.chains.set(rename[2]!, chain);
        table = work;
        return ok();
      }
      const flush = new RegExp(`^flush set ${TABLE} (\\w+)$`).exec(args);
      if (flush) {
        table = exec(clone(table), `flush set ${TABLE} ${flush[1]}`, []);
        return ok();
      }
    } catch (e) {
      if (e instanceof NftError) fail(argv, e.message);
      throw e;
    }
    throw new Error(`fake nft: unsupported invocation ${argv.join(' ')}`);
  };

  return {
    runner,
    calls,
    scripts,
    hasTable: () => table !== undefined,
    failNextScript: (stderr) => {
      pendingFailure = stderr;
    },
  };
}
