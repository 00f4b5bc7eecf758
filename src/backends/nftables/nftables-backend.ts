// The native nftables backend: read lists our table once, and for the shadowing report the chains
// of all tables and a bounded few of their rules (never `list ruleset`); plan (pure) decides the
// transaction; apply pipes it into `nft -f -`. No object outside `inet ip-masq-agent` is ever
// named in a write.
import { CommandError } from '../../errors.js';
import type { Family } from '../../net/cidr.js';
import { isNftObjectMissing, type CommandResult, type Runner } from '../../exec/runner.js';
import type { Backend } from '../backend.js';
import { nftLeftover } from '../leftovers.js';
import { parseNftCounters } from './counters.js';
import { FOLLOW_DEPTH, MAX_FOLLOWED_CHAINS } from '../shadow-owner.js';
import { NFT_TABLE_REF } from './names.js';
import { ownedNftLines, parseNftTable, type NftTableListing } from './parse.js';
import { nftPlanScripts, planNft, planNftCleanup, type NftObserved, type NftablesPlan } from './plan.js';
import { expectedNftLines, renderNftScript } from './render.js';
import { chainTranslation, natPostroutingChains, type NftNatChain, type NftTranslator } from './shadow.js';

/** What `nft` printed, or undefined when it failed only because the table or chain is not there. */
async function unlessMissing(command: Promise<CommandResult>): Promise<string | undefined> {
  try {
    return (await command).stdout;
  } catch (e) {
    if (e instanceof CommandError && e.exitCode === 1 && isNftObjectMissing(e)) return undefined;
    throw e;
  }
}

/** Creates the native nftables backend (`nftables`) on `runner`, owning only the table `inet ip-masq-agent`. */
export function createNftablesBackend(runner: Runner): Backend<NftObserved, NftablesPlan> {
  const run = (args: readonly string[], input?: string) => runner(['nft', ...args], input === undefined ? {} : { input });

  /** The output of an `nft -j list`, or undefined when what it lists does not exist. */
  const list = (args: readonly string[]): Promise<string | undefined> => unlessMissing(run(['-j', ...args]));
  // A table gone in between (another cleanup) is the goal.
  const deleteTable = () => unlessMissing(run(['delete', 'table', ...NFT_TABLE_REF.split(' ')])).then(() => undefined);

  /** Our table, parsed once; terse (no set elements) when only which objects exist matters. */
  const listTable = async (terse: boolean): Promise<NftTableListing | undefined> => {
    const json = await list([...(terse ? ['-t'] : []), 'list', 'table', ...NFT_TABLE_REF.split(' ')]);
    return json === undefined ? undefined : parseNftTable(json);
  };

  /**
   * Other tables' nat postrouting chains of the family that translate. `list chains` prints no
   * rules, so only the few candidate chains (and the chains they jump to) are listed, bounded.
   */
  const listTranslators = async (family: Family): Promise<NftTranslator[]> => {
    let budget = MAX_FOLLOWED_CHAINS;
    const translationOf = async (c: NftNatChain, chain: string, depth: number): Promise<string | undefined> => {
      if (budget-- <= 0) return undefined;
      const json = await list(['list', 'chain', c.family, c.table, chain]);
      if (json === undefined) return undefined;
      const { translation, targets } = chainTranslation(json);
      if (translation !== undefined || depth >= FOLLOW_DEPTH) return translation;
      for (const t of targets) {
        const inner = await translationOf(c, t, depth + 1);
        if (inner !== undefined) return `jump ${t}: ${inner}`;
      }
      return undefined;
    };
    const found: NftTranslator[] = [];
    for (const c of natPostroutingChains((await list(['list', 'chains'])) ?? '{"nftables": []}', family)) {
      const translation = await translationOf(c, c.chain, 0);
      if (translation !== undefined) found.push({ ...c, translation });
    }
    return found;
  };

  const read = async (family: Family, { owned = true } = {}): Promise<NftObserved> => {
    // A config change rewrites our objects whole: the set elements need not be listed then.
    const [table, translators] = await Promise.all([listTable(!owned), listTranslators(family)]);
    const lines = !owned ? undefined : table === undefined ? [] : ownedNftLines(table, family);
    return { family, owned: lines, table, translators };
  };

  const apply = async (plan: NftablesPlan): Promise<void> => {
    // A table changed between read and apply makes nft refuse the script: the sync fails, the
    // rules in place stay, and the retry reads again.
    for (const script of nftPlanScripts(plan)) await run(['-f', '-'], script);
    if (plan.replanAfterWake) await apply(planNft(await read(plan.family, { owned: false }), plan.replanAfterWake));
  };

  return {
    name: 'nftables',
    expected: (policy) => expectedNftLines(policy),
    // The script apply pipes into `nft -f -` on a node without our table.
    render: (policy) => ({ family: policy.family, command: 'nft -f -', payload: renderNftScript([policy]) }),
    describe: () => ({ dialect: 'nftables' }),
    // One table holds both families: it is one place to clean up.
    leftovers: () => [nftLeftover(runner, deleteTable)],
    counters: async (policies) => {
      const { stdout } = await run(['-j', 'list', 'table', ...NFT_TABLE_REF.split(' ')]);
      return parseNftCounters(stdout, policies);
    },
    read,
    plan: planNft,
    apply,
    cleanup: async (family: Family) => {
      const todo = planNftCleanup(await listTable(true), family);
      if (todo === 'delete table') await deleteTable();
      else if (todo !== undefined) await run(['-f', '-'], todo.script);
    },
  };
}
