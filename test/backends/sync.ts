import { applyPolicy, type Backend, type OwnedState } from '../../src/backends/backend.js';
import type { Family } from '../../src/net/cidr.js';

export { applyPolicy };

/** What a backend's read() shows of our own rules for one family (empty when it lists none). */
export async function readOwned(backend: Backend, family: Family): Promise<OwnedState> {
  return (await backend.read(family)).owned ?? [];
}

/** The rule texts of a plan's shadowing list, owners left out. */
export const rulesOf = (shadowing: readonly { readonly rule: string }[]): string[] => shadowing.map((s) => s.rule);
