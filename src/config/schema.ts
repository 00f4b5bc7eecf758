// The shape of an ip-masq-agent config file, as a zod schema built from the key descriptors in
// keys.ts, for ip-masq-agent.schema.json (regenerate with `npm run build && node
// scripts/gen-schema.mjs`) and tests only: the agent checks structure without zod (structure.ts,
// which a test holds to this schema), so it never loads zod. Meaning-level checks (CIDR syntax and
// alignment, Go duration value, IPv6 enabled, cidrLimit, conflicts) happen in fragment.ts and merge.ts.
import { z, type ZodType } from 'zod';
import { CONFIG_KEYS, GO_DURATION_PATTERN, KEYS, type ConfigKey, type KeyDescriptor } from './keys.js';

const CIDR_ITEM = 'An aligned IPv4 or IPv6 CIDR block, e.g. "10.0.0.0/8" or "fd00::/8" (IPv6 needs --enable-ipv6).';
const cidrList = () => z.array(z.string().meta({ title: 'CIDR', description: CIDR_ITEM, examples: ['10.0.0.0/8', '2001:db8::/32'] }));

/** The structure of each value shape. */
const SHAPES: Record<KeyDescriptor['shape'], () => ZodType> = {
  cidrList,
  boolean: () => z.boolean(),
  count: () => z.number().int().min(0),
  duration: () => z.string().regex(new RegExp(GO_DURATION_PATTERN)),
  snatList: () =>
    z.array(
      z.strictObject({
        cidrs: cidrList().meta({ title: 'Destination CIDRs', description: 'Destinations SNATed to toSource (longest prefix decides).' }),
        toSource: z.string().meta({ title: 'Source address', description: 'The fixed address (of this node) the traffic leaves with.', examples: ['198.51.100.9'] }),
      }),
    ),
};

const keySchema = ({ shape, title, description, examples }: KeyDescriptor) =>
  SHAPES[shape]()
    .optional()
    .meta({ title, description, ...(examples && { examples: [...examples] }) });
const shape = Object.fromEntries(CONFIG_KEYS.map((k) => [k, keySchema(KEYS[k])])) as Record<ConfigKey, ReturnType<typeof keySchema>>;

/** Zod schema of a config file (every key optional; unknown keys rejected). */
export const configSchema = z.strictObject(shape).meta({
  title: 'ip-masq-agent configuration',
  description: 'Config file of the Kubernetes IP Masquerade Agent (/etc/config/ip-masq-agent), YAML or JSON. Every key is optional.',
});

/** The exact text of ip-masq-agent.schema.json (2-space JSON and a final newline), generated from configSchema. */
export function renderConfigJsonSchema(): string {
  return `${JSON.stringify(z.toJSONSchema(configSchema), null, 2)}\n`;
}
