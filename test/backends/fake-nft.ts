// A scripted stand-in for the `nft` binary, holding one table in memory. It understands exactly
// the commands and rule grammar the nftables backend emits, with the kernel's rules that matter
// here: a batch applies all or nothing, deleting a missing object fails, a set still referenced
// by a rule cannot be deleted, overlapping intervals are refused, and a command naming any other
// table fails. Its `-j list table` output matches real nft 1.0.6 (checked against the captured
// list.json goldens), so unit tests exercise the real parser.
import { CommandError } from '../../src/errors.js';
import type { CommandResult, Runner } from '../../src/exec/runner.js';
import { formatIp, parseCidr, type Cidr } from '../../src/net/cidr.js';
import { cidrLast, compareCidrs } from '../../src/net/normalize.js';

interface FakeSet {
  handle: number;
  type: string;
  flags: string[];
  elements: Cidr[];
}

interface FakeChain {
  handle: number;
  base?: { type: string; hook: string; prio: number; policy: string };
  rules: { handle: number; text: string }[];
}

interface FakeTable {
  handle: number;
  sets: Map<string, FakeSet>;
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
    sets: new Map([...t.sets].map(([k, s]) => [k, { ...s, flags: [...s.flags], elements: [...s.elements] }])),
    chains: new Map([...t.chains].map(([k, c]) => [k, { ...c, rules: [...c.rules] }])),
  };
}

const CHAIN_SPEC = /^\{ type (\w+) hook (\w+) priority (\w+); policy (\w+); \}$/;
const SET_SPEC = /^\{ type (\w+); flags (\w+); \}$/;

/** The JSON nft 1.0.6 prints for one rule of the grammar the backend emits. */
function ruleExpr(text: string): unknown[] {
  const out: unknown[] = [];
  let rest = text.trim();
  const take = (re: RegExp): RegExpExecArray | undefined => {
    const m = re.exec(rest);
    if (!m) return undefined;
    rest = rest.slice(m[0].length).trimStart();
    return m;
  };
  while (rest.length > 0) {
    let m: RegExpExecArray | undefined;
    if ((m = take(/^meta (\w+) (?:(!=) )?(\w+)/))) {
      out.push({ match: { op: m[2] ?? '==', left: { meta: { key: m[1] } }, right: m[3] } });
    } else if ((m = take(/^fib daddr type (\w+)/))) {
      out.push({ match: { op: '==', left: { fib: { result: 'type', flags: ['daddr'] } }, right: m[1] } });
    } else if ((m = take(/^(ip6?) daddr (@\w+)/))) {
      out.push({ match: { op: '==', left: { payload: { protocol: m[1], field: 'daddr' } }, right: m[2] } });
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
    } else if ((m = take(/^return$/))) {
      out.push({ return: null });
    } else {
      throw new NftError(`Error: syntax error, unexpected ${rest.split(' ')[0]}`);
    }
  }
  return out;
}

function elementJson(c: Cidr): unknown {
  const addr = formatIp({ family: c.family, value: c.base });
  return c.prefix === BITS[c.family] ? addr : { prefix: { addr, len: c.prefix } };
}

/** Creates a fake nft with no table. */
export function createFakeNft(): FakeNft {
  let table: FakeTable | undefined;
  let nextHandle = 1;
  const calls: (readonly string[])[] = [];
  const scripts: string[] = [];
  let pendingFailure: string | undefined;

  const needTable = (t: FakeTable | undefined): FakeTable => {
    if (!t) throw new NftError('Error: No such file or directory; did you mean table ‘ip-masq-agent’ in family inet?');
    return t;
  };

  /** Applies one command to the working copy; returns it (the table may be created or deleted). */
  const exec = (t: FakeTable | undefined, cmd: string, elements: string[]): FakeTable | undefined => {
    const m = /^(add|delete|flush) (table|chain|set|element|rule) inet (\S+)(?: (\S+))?(?: (.*))?$/.exec(cmd);
    if (!m) throw new NftError(`Error: syntax error in "${cmd}"`);
    const [, verb, kind, tableName, name = '', rest = ''] = m;
    if (`inet ${tableName}` !== TABLE) throw new NftError(`fake nft: refusing to touch table inet ${tableName}`);
    const key = `${verb} ${kind}`;
    if (key === 'add table') return t ?? { handle: nextHandle++, sets: new Map(), chains: new Map() };
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
        const old = tab.chains.get(name);
        if (old) {
          if (base && JSON.stringify(old.base) !== JSON.stringify(base)) throw new NftError('Error: Could not process rule: Operation not supported');
        } else {
          tab.chains.set(name, { handle: nextHandle++, ...(base ? { base } : {}), rules: [] });
        }
        return tab;
      }
      case 'delete chain':
        if (!tab.chains.delete(name)) throw new NftError('Error: Could not process rule: No such file or directory');
        return tab;
      case 'add set': {
        const spec = SET_SPEC.exec(rest);
        if (!spec) throw new NftError(`Error: syntax error in set spec "${rest}"`);
        const old = tab.sets.get(name);
        if (old && (old.type !== spec[1] || old.flags.join() !== spec[2])) throw new NftError('Error: Could not process rule: File exists');
        if (!old) tab.sets.set(name, { handle: nextHandle++, type: spec[1]!, flags: [spec[2]!], elements: [] });
        return tab;
      }
      case 'delete set': {
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
        const added = elements.map((e) => {
          const c = parseCidr(e.includes('/') ? e : `${e}/${BITS[family]}`);
          if (c.family !== family) throw new NftError(`Error: invalid element ${e} for ${set.type}`);
          return c;
        });
        const all = [...set.elements, ...added].sort(compareCidrs);
        for (let i = 1; i < all.length; i++) {
          if (cidrLast(all[i - 1]!) >= all[i]!.base) throw new NftError('Error: conflicting intervals specified');
        }
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
    const out: unknown[] = [
      { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
      { table: { family: 'inet', name: 'ip-masq-agent', handle: t.handle } },
    ];
    for (const [name, s] of t.sets) {
      const elem = !terse && s.elements.length ? { elem: s.elements.map(elementJson) } : {};
      out.push({ set: { family: 'inet', name, table: 'ip-masq-agent', type: s.type, handle: s.handle, flags: s.flags, ...elem } });
    }
    // Like nft: every set, then every chain, then every chain's rules.
    for (const [name, c] of t.chains) out.push({ chain: { ...common, name, handle: c.handle, ...(c.base ?? {}) } });
    for (const [name, c] of t.chains) {
      for (const r of c.rules) out.push({ rule: { ...common, chain: name, handle: r.handle, expr: ruleExpr(r.text) } });
    }
    return JSON.stringify({ nftables: out });
  };

  const fail = (argv: readonly string[], stderr: string): never => {
    throw new CommandError(argv, 1, `${stderr}\n`, /No such file/.test(stderr) ? 'not-found' : 'other', `${argv.join(' ')}: exit code 1: ${stderr}`);
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
      if (args === `delete table ${TABLE}`) {
        needTable(table);
        table = undefined;
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
