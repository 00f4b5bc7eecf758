import { createFakeBackend } from '../../src/backends/fake.js';
import { runBackendContract } from './contract.js';

runBackendContract('fake', async () => {
  const backend = createFakeBackend();
  return {
    backend,
    damage: async (family) => void backend.tables.set(family, (backend.tables.get(family) ?? []).slice(0, 1)),
    addStrayJumps: async (family) => {
      backend.addStrayJump(family, 'quoted comment');
      backend.addStrayJump(family, 'bare');
    },
    insertAbove: async (family) => backend.insertAbove(family),
    dispose: () => undefined,
  };
});
