// The native nftables backend: one `nft -f -` transaction per apply, read-back of our own table
// only (never `list ruleset`), and no object outside `inet ip-masq-agent` is ever named.
import { CommandError } from '../../errors.js';
import type { Family } from '../../net/cidr.js';
import { isNftObjectMissing, isNftTableNotAsLeft, type Runner } from '../../exec/runner.js';
import { sameState, type Backend, type Observed, type OwnedState, type Plan } from '../backend.js';
import type { FamilyPolicy } from '../../policy/types.js';
import { nftLeftover } from '../leftovers.js';
import { NFT_TABLE_REF } from './names.js';
import { NFT_TABLE_LINE_PREFIX, familiesInNftJson, foreignObjectsInNftJson, objectNamesInNftJson, parseNftRead, tableHasFlagsInNftJson } from './parse.js';
import { expectedNftLines, renderNftScript, renderNftWake } from './render.js';

/** What the nftables backend needs. */
export interface NftablesBackendOptions {
  /** Runs `nft`; tests pass a fake or a namespace runner. */
  readonly runner: Runner;
  /** The nft binary. Default `nft`. */
  readonly nft?: string;
  /** Per-command timeout in milliseconds. Default: the runner's. */
  readonly timeoutMs?: number;
}

const LIST_TABLE = ['list', 'table', ...NFT_TABLE_REF.split(' ')];

/** Whether a failed `nft list table` only means that our table is not there. */
function isMissingTable(e: unknown): boolean {
  return e instanceof CommandError && e.exitCode === 1 && isNftObjectMissing(e);
}

/** What the nftables backend's apply() runs. */
export interface NftablesPlan extends Plan {
  readonly policy: FamilyPolicy;
  readonly seen: OwnedState | undefined;
}

/** Creates the native nftables backend (`nftables`), owning only the table `inet ip-masq-agent`. */
export function createNftablesBackend(options: NftablesBackendOptions): Backend<Observed, NftablesPlan> {
  const nft = options.nft ?? 'nft';
  const timeout = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
  const run = (args: readonly string[], input?: string) => options.runner([nft, ...args], input === undefined ? timeout : { ...timeout, input });

  /** The table as `nft -j` prints it, or undefined when it does not exist. */
  const listTable = async (terse: boolean): Promise<string | undefined> => {
    try {
      return (await run(terse ? ['-j', '-t', ...LIST_TABLE] : ['-j', ...LIST_TABLE])).stdout;
    } catch (e) {
      if (isMissingTable(e)) return undefined;
      throw e;
    }
  };

  /**
   * Apply, knowing what the table holds: our objects replaced by name, every object we did not
   * write deleted by handle, in one transaction. A table with flags (dormant) is woken first, in
   * a transaction of its own, because the kernel refuses a base chain in the one that wakes it;
   * until the second lands the table holds what it held before it was put to sleep.
   */
  const applyKnowingTable = async (policy: FamilyPolicy): Promise<void> => {
    let json = await listTable(true);
    if (json !== undefined && tableHasFlagsInNftJson(json)) {
      await run(['-f', '-'], renderNftWake());
      json = await listTable(true);
    }
    const existing = json === undefined ? new Set<string>() : objectNamesInNftJson(json);
    const foreign = json === undefined ? [] : foreignObjectsInNftJson(json);
    await run(['-f', '-'], renderNftScript([policy], { existing, foreign }));
  };

  return {
    name: 'nftables',
    expected: (policy) => expectedNftLines(policy),
    // The script apply pipes into `nft -f -` when our objects are as we left them.
    render: (policy) => ({ family: policy.family, command: 'nft -f -', payload: renderNftScript([policy]) }),
    describe: () => ({ name: 'nftables', dialect: 'nftables' }),
    // One table holds both families: it is one place to clean up.
    leftovers: () => [nftLeftover(options.runner)],
    read: async (family) => {
      const json = await listTable(false);
      return { family, owned: json === undefined ? [] : parseNftRead(json, family) };
    },
    plan: (observed, policy) => ({ family: policy.family, upToDate: sameState(observed.owned, expectedNftLines(policy)), shadowing: [], policy, seen: observed.owned }),
    apply: async ({ upToDate, policy, seen }) => {
      if (upToDate) return;
      // The read just before saw the table not as we left it: the blind script would be refused.
      if (seen?.some((l) => l.startsWith(NFT_TABLE_LINE_PREFIX))) return applyKnowingTable(policy);
      try {
        await run(['-f', '-'], renderNftScript([policy]));
      } catch (e) {
        // A table not as we left it (isNftTableNotAsLeft): a fresh listing explains it, so apply
        // lists the table and tries once more, knowing what is there.
        if (!(e instanceof CommandError) || !isNftTableNotAsLeft(e)) throw e;
        await applyKnowingTable(policy);
      }
    },
    cleanup: async (family: Family) => {
      // Terse listing: the set elements are not needed to see which objects exist.
      const json = await listTable(true);
      if (json === undefined) return;
      const present = familiesInNftJson(json);
      const othersPresent = [...present].some((f) => f !== family);
      if (!othersPresent) {
        // Nothing of the other family is left: the table goes, whatever else is in it.
        try {
          await run(['delete', 'table', ...NFT_TABLE_REF.split(' ')]);
        } catch (e) {
          if (!isMissingTable(e)) throw e;
        }
        return;
      }
      if (present.has(family)) await run(['-f', '-'], renderNftScript([], { remove: [family], existing: objectNamesInNftJson(json) }));
    },
  };
}
