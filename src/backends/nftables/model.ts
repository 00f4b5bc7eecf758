// The nftables objects of our table as data (as knftables has them), and the one formatter from
// them to the two texts we use: the `nft -f -` transaction and the canonical read-back lines that
// the drift check compares (handles and counters left out, so only a difference in meaning shows).
import { NFT_TABLE_REF, SRCNAT_PRIORITY } from './names.js';

/** A named set; elements as nft prints them (`10.0.0.0/8`, `10.0.0.0-10.8.255.255`). */
export interface NftSet {
  readonly kind: 'set';
  readonly name: string;
  readonly type: string;
  readonly flags: readonly string[];
  /** Whether each element counts what it matched (`counter;`): ours does, for the connections per decision. */
  readonly counter: boolean;
  readonly elements: readonly string[];
}

/** A chain; a base chain has `base`: where it hooks, and what it does with a packet no rule took. */
export interface NftChain {
  readonly kind: 'chain';
  readonly name: string;
  readonly base?: {
    readonly type: string;
    readonly hook: string;
    readonly priority: number;
    readonly policy: string;
  };
}

/** One rule of a chain, its body exactly as `nft list` prints it. */
export interface NftRule {
  readonly kind: 'rule';
  readonly chain: string;
  readonly text: string;
}

/** An object of our table. */
export type NftObject = NftSet | NftChain | NftRule;

/** One command of a transaction: add an object, or delete one by name or handle. */
export type NftOp =
  | { readonly verb: 'add'; readonly object: NftObject }
  | { readonly verb: 'delete'; readonly kind: string; readonly name: string }
  | { readonly verb: 'delete'; readonly kind: string; readonly handle: number };

/** The comment that opens every transaction but the wake. */
const HEADER = '# ip-masq-agent: one transaction; the kernel applies all of it or none';

/** `add ...` of an object. */
export const add = (object: NftObject): NftOp => ({ verb: 'add', object });

/** `delete KIND T NAME`. */
export const deleteByName = (kind: string, name: string): NftOp => ({ verb: 'delete', kind, name });

function addLines(o: NftObject, out: string[]): void {
  switch (o.kind) {
    case 'set': {
      const flags = o.flags.length ? ` flags ${o.flags.join(',')};` : '';
      out.push(`add set ${NFT_TABLE_REF} ${o.name} { type ${o.type};${flags}${o.counter ? ' counter;' : ''} }`);
      if (o.elements.length === 0) return;
      // A loop, not push(...spread): spreading 125,000+ elements as arguments overflows the stack.
      out.push(`add element ${NFT_TABLE_REF} ${o.name} {`);
      for (const e of o.elements) out.push(`\t${e},`);
      out.push('}');
      return;
    }
    case 'chain': {
      const b = o.base;
      const prio = b?.priority === SRCNAT_PRIORITY ? 'srcnat' : String(b?.priority);
      out.push(b ? `add chain ${NFT_TABLE_REF} ${o.name} { type ${b.type} hook ${b.hook} priority ${prio}; policy ${b.policy}; }` : `add chain ${NFT_TABLE_REF} ${o.name}`);
      return;
    }
    case 'rule':
      out.push(`add rule ${NFT_TABLE_REF} ${o.chain} ${o.text}`);
  }
}

/** A transaction as the `nft -f -` script text: it creates our table when absent, then runs `ops`. */
export function formatNftScript(ops: readonly NftOp[]): string {
  const out = [HEADER, `add table ${NFT_TABLE_REF}`];
  for (const op of ops) {
    if (op.verb === 'add') addLines(op.object, out);
    else out.push(`delete ${op.kind} ${NFT_TABLE_REF} ${'handle' in op ? `handle ${op.handle}` : op.name}`);
  }
  return `${out.join('\n')}\n`;
}

/** The canonical lines of objects, in the order given: `set NAME type T flags F counter`, `element NAME E`, `chain NAME ...`, `rule CHAIN BODY`. */
export function canonicalLines(objects: readonly NftObject[]): string[] {
  const out: string[] = [];
  for (const o of objects) {
    if (o.kind === 'set') {
      const flags = o.flags.length ? ` flags ${o.flags.join(',')}` : '';
      out.push(`set ${o.name} type ${o.type}${flags}${o.counter ? ' counter' : ''}`);
      for (const e of o.elements) out.push(`element ${o.name} ${e}`);
    } else if (o.kind === 'chain') {
      const b = o.base;
      out.push(b ? `chain ${o.name} type ${b.type} hook ${b.hook} prio ${b.priority} policy ${b.policy}` : `chain ${o.name}`);
    } else out.push(`rule ${o.chain} ${o.text}`);
  }
  return out;
}
