// The shape of an ip-masq-agent config file, as a zod schema built from the key descriptors in
// keys.ts, for ip-masq-agent.schema.json (regenerate with `npm run build && node
// scripts/gen-schema.mjs`) and tests only: the agent checks structure without zod (structure.ts,
// which a test holds to this schema), so it never loads zod. Meaning-level checks (CIDR syntax and
// alignment, Go duration value, IPv6 enabled, cidrLimit, conflicts) happen in parse.ts and merge.ts.
import { z } from 'zod';
import { CONFIG_KEYS, KEYS } from './keys.js';

const shape = Object.fromEntries(CONFIG_KEYS.map((k) => [k, KEYS[k].schema(z)])) as { [K in keyof typeof KEYS]: ReturnType<(typeof KEYS)[K]['schema']> };

/** Zod schema of a config file (every key optional; unknown keys rejected). */
export const configSchema = z.strictObject(shape).meta({
  title: 'ip-masq-agent configuration',
  description: 'Config file of the Kubernetes IP Masquerade Agent (/etc/config/ip-masq-agent), YAML or JSON. Every key is optional.',
});

/** The exact text of ip-masq-agent.schema.json (2-space JSON and a final newline), generated from configSchema. */
export function renderConfigJsonSchema(): string {
  return `${JSON.stringify(z.toJSONSchema(configSchema), null, 2)}\n`;
}
