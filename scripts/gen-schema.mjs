// Writes ip-masq-agent.schema.json (the JSON Schema of the config file) from the zod schema in
// src/config/schema.ts, so editors can validate and complete configs.
// Regenerate after changing the schema:   npm run build && node scripts/gen-schema.mjs
// test/config/schema.test.ts fails when the committed file and the schema differ.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = process.argv[2] ?? 'dist';
const { renderConfigJsonSchema } = await import(join(root, dist, 'src/config/schema.js'));
const out = join(root, 'ip-masq-agent.schema.json');
writeFileSync(out, renderConfigJsonSchema());
console.log(`wrote ${out}`);
