import type { Backend, Observed, OwnedState, Plan } from '../../src/backends/backend.js';
import type { Family } from '../../src/net/cidr.js';
import type { FamilyPolicy } from '../../src/policy/types.js';

/** One sync of one family, as the agent runs it, for tests and benches that need no step of it: read, plan, apply. */
export async function applyPolicy<O extends Observed, P extends Plan>(backend: Backend<O, P>, policy: FamilyPolicy): Promise<P> {
  const plan = backend.plan(await backend.read(policy.family), policy);
  await backend.apply(plan);
  return plan;
}

/** What a backend's read() shows of our own rules for one family (empty when it lists none). */
export async function readOwned(backend: Backend, family: Family): Promise<OwnedState> {
  return (await backend.read(family)).owned ?? [];
}

/** The rule texts of a plan's shadowing list, owners left out. */
export const rulesOf = (shadowing: readonly { readonly rule: string }[]): string[] => shadowing.map((s) => s.rule);
