// The pure step between read() and apply(): from what the listing showed and what the policy
// wants, the transaction(s) that make our table so. A dormant table is woken first, in a
// transaction of its own, because the kernel refuses a base chain in the one that wakes it.
import { sameState, type Observed, type Plan } from '../backend.js';
import type { Family } from '../../net/cidr.js';
import type { FamilyPolicy } from '../../policy/types.js';
import { deleteByName, formatNftScript, type NftOp } from './model.js';
import { NFT_NAMES, NFT_TABLE_REF, isAgentObject } from './names.js';
import type { NftForeignObject, NftTableListing } from './parse.js';
import { expectedNftLines, nftChainPriority, nftFamilyOps, renderNftScript } from './render.js';
import { describeNftTranslator, type NftTranslator } from './shadow.js';

/** What the nftables backend's read() saw. */
export interface NftObserved extends Observed {
  /** The listing of our table; undefined when there is no table. */
  readonly table: NftTableListing | undefined;
  /** Other tables' nat postrouting base chains of this family that translate, at srcnat or before. */
  readonly translators: readonly NftTranslator[];
}

/** What the nftables backend's apply() runs. */
export interface NftablesPlan extends Plan {
  /** The table is dormant: a transaction that only wakes it (`add table`) runs first. */
  readonly wake: boolean;
  /** The one transaction that makes the family's objects what the policy wants; empty when up to date. */
  readonly ops: readonly NftOp[];
  /** nft 1.0.6 cut the dormant table's listing off: apply wakes it, then plans this policy again from a whole listing. */
  readonly replanAfterWake?: FamilyPolicy;
}

/** Object kinds nft 1.0.6 deletes by handle; `delete map` takes no handle, but `delete set` deletes a map. */
const DELETE_BY_HANDLE = new Set(['chain', 'set', 'map', 'flowtable', 'counter', 'quota', 'limit', 'secmark', 'synproxy']);

/** Kinds nft deletes only by name (`delete ct helper inet t NAME`: "unexpected handle"). */
const DELETE_BY_NAME = new Set(['ct helper', 'ct timeout', 'ct expectation']);

/** A name nft reads bare, without quoting. */
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** One foreign object's delete; throws when nft has no way to name it, so the sync fails saying what. */
function deleteForeign(o: NftForeignObject): NftOp {
  // A map holding our set's name goes by name: nft checks the script against its own view of the
  // table, where deleting by handle does not free the name, and it would refuse our `add set`.
  if (o.kind === 'map' && isAgentObject('set', o.name)) return deleteByName('map', o.name);
  if (DELETE_BY_HANDLE.has(o.kind) && o.handle !== undefined) return { verb: 'delete', kind: o.kind === 'map' ? 'set' : o.kind, handle: o.handle };
  if (DELETE_BY_NAME.has(o.kind) && PLAIN_NAME.test(o.name)) return deleteByName(o.kind, o.name);
  throw new Error(
    `table ${NFT_TABLE_REF} holds ${o.kind} ${JSON.stringify(o.name)}, which the agent did not write and cannot name to delete; remove it by hand (or delete the table: the agent re-creates its rules)`,
  );
}

/**
 * The deletes of the foreign objects: chains first, a chain before the chains it jumps to (the
 * kernel refuses to delete a chain still jumped to), then everything else (sets, maps, counters
 * that the deleted rules referenced).
 */
export function nftForeignDeletions(foreign: readonly NftForeignObject[]): NftOp[] {
  const ordered: NftForeignObject[] = [];
  let left = foreign.filter((o) => o.kind === 'chain');
  while (left.length > 0) {
    // Ready: no chain still left jumps to it. nft refuses jump loops, so one is always ready; the
    // fallback keeps a broken listing from looping here.
    const ready = left.filter((c) => !left.some((o) => o !== c && o.targets.includes(c.name)));
    const take = ready.length > 0 ? ready : left;
    ordered.push(...take);
    left = left.filter((c) => !take.includes(c));
  }
  return [...ordered, ...foreign.filter((o) => o.kind !== 'chain')].map(deleteForeign);
}

/**
 * Plans one family: up to date when the owned lines read equal the wanted ones; else one transaction
 * (nftFamilyOps) that deletes the foreign objects between our chain and our set.
 */
export function planNft(observed: NftObserved, policy: FamilyPolicy): NftablesPlan {
  const family = policy.family;
  const priority = nftChainPriority(policy);
  const shadowing = observed.translators.filter((t) => t.priority <= priority).map(describeNftTranslator);
  if (sameState(observed.owned, expectedNftLines(policy))) return { family, upToDate: true, shadowing, wake: false, ops: [] };
  const table = observed.table;
  if (table?.unseen) return { family, upToDate: false, shadowing, wake: true, ops: [], replanAfterWake: policy };
  const ops = nftFamilyOps(family, policy, table?.names, nftForeignDeletions(table?.foreign ?? []));
  return { family, upToDate: false, shadowing, wake: table?.flags !== undefined, ops };
}

/** The `nft -f -` scripts a plan runs, in order. */
export function nftPlanScripts(plan: NftablesPlan): string[] {
  const wake = plan.wake ? [`add table ${NFT_TABLE_REF}\n`] : [];
  return plan.ops.length > 0 ? [...wake, formatNftScript(plan.ops)] : wake;
}

/**
 * What cleanup(family) does to our table: nothing (undefined: no table, or none of the family's
 * objects), `delete table` (nothing of the other family is left: the table goes, whatever else is
 * in it), or the script removing only the family's objects.
 */
export function planNftCleanup(table: NftTableListing | undefined, family: Family): 'delete table' | { readonly script: string } | undefined {
  if (table === undefined) return undefined;
  const has = (f: Family) => table.names.has(NFT_NAMES[f].set) || table.names.has(NFT_NAMES[f].chain);
  if (!(['ipv4', 'ipv6'] as const).some((f) => f !== family && has(f))) return 'delete table';
  return has(family) ? { script: renderNftScript([], { remove: [family], existing: table.names }) } : undefined;
}
