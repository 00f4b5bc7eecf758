// The shape of an ip-masq-agent config file, as a zod schema. It is the single source for
// structural validation and for ip-masq-agent.schema.json (regenerate with
// `npm run build && node scripts/gen-schema.mjs`). Meaning-level checks (CIDR syntax and
// alignment, Go duration value, IPv6 enabled, cidrLimit) happen in parse.ts.
import { z } from 'zod';

/** Go time.ParseDuration's grammar: an optional sign, then `0` or number+unit groups. */
export const GO_DURATION_PATTERN = '^[-+]?(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$';

/** The config keys, in the order the documentation lists them. */
export const CONFIG_KEYS = [
  'nonMasqueradeCIDRs',
  'cidrLimit',
  'masqLinkLocal',
  'masqLinkLocalIPv6',
  'resyncInterval',
] as const;

/** One config key. */
export type ConfigKey = (typeof CONFIG_KEYS)[number];

/** Zod schema of a config file (every key optional; unknown keys rejected). */
export const configSchema = z
  .strictObject({
    nonMasqueradeCIDRs: z
      .array(
        z.string().meta({
          title: 'CIDR',
          description: 'An aligned IPv4 or IPv6 CIDR block, e.g. "10.0.0.0/8" or "fd00::/8" (IPv6 needs --enable-ipv6).',
          examples: ['10.0.0.0/8', '2001:db8::/32'],
        }),
      )
      .optional()
      .meta({
        title: 'Non-masquerade CIDRs',
        description:
          'Destinations that keep the pod source IP (not masqueraded), in rule order. [] masquerades everything except link-local; leaving the key out uses the defaults 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (all reserved ranges with --nomasq-all-reserved-ranges).',
      }),
    cidrLimit: z
      .number()
      .int()
      .min(0)
      .optional()
      .meta({
        title: 'CIDR limit',
        description: 'Maximum number of nonMasqueradeCIDRs (IPv4 and IPv6 together, link-local not counted). Default 64.',
      }),
    masqLinkLocal: z
      .boolean()
      .optional()
      .meta({
        title: 'Masquerade IPv4 link-local',
        description: 'true masquerades traffic to 169.254.0.0/16 too; default false (link-local keeps the pod IP).',
      }),
    masqLinkLocalIPv6: z
      .boolean()
      .optional()
      .meta({
        title: 'Masquerade IPv6 link-local',
        description: 'true masquerades traffic to fe80::/10 too; default false (link-local keeps the pod IP).',
      }),
    resyncInterval: z
      .string()
      .regex(new RegExp(GO_DURATION_PATTERN))
      .optional()
      .meta({
        title: 'Resync interval',
        description:
          'How often the config is re-read and the rules re-checked, as a Go duration string ("60s", "1m30s", "500ms"); not negative, and anything below 1s runs at 1s. Default "60s".',
        examples: ['60s', '1m30s'],
      }),
  })
  .meta({
    title: 'ip-masq-agent configuration',
    description:
      'Config file of the Kubernetes IP Masquerade Agent (/etc/config/ip-masq-agent), YAML or JSON. Every key is optional.',
  });

/** The config file as the schema sees it. */
export type ConfigFileInput = z.infer<typeof configSchema>;

/** The JSON Schema generated from configSchema, as committed in ip-masq-agent.schema.json. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema) as Record<string, unknown>;
}

/** The exact text of ip-masq-agent.schema.json (2-space JSON and a final newline). */
export function renderConfigJsonSchema(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
