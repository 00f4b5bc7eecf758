// `ip-masq-agent validate [FILE|DIR]...`: the agent's own parser and checks on a config, for a
// pre-commit hook, a CI step on the ConfigMap, or a look at the node's mounted config.
import { DEFAULT_CONFIG_PATH, type ConfigOptions, type MasqConfig } from '../config/config.js';
import { buildPolicy } from '../policy/build.js';
import { describeRedundantRow, findRedundantRows, usesDecisions } from '../policy/decide.js';
import { allListEntries, configValues, isKeyShown } from '../config/key-values.js';
import { CONFIG_KEYS, KEYS, type KeyDescriptor, type ListKey } from '../config/keys.js';
import { ConfigError, formatIssue, type ConfigIssue } from '../errors.js';
import { LINK_LOCAL_V4, LINK_LOCAL_V6, cidrContainsCidr, parseCidr } from '../net/cidr.js';
import { normalizeRanges } from '../net/normalize.js';
import type { ExemptRange } from '../policy/types.js';
import { MAX_CONFIG_BYTES, MAX_CONFIG_NODES, describeCidrCaps } from '../limits.js';
import { EXIT, writeJson } from './command.js';
import { defineCommand, describeEntryOrigin, loadCommandConfig, type CommandConfig } from './command-shape.js';

const HELP = {
  usage: 'ip-masq-agent validate [flags] [FILE|DIR]...',
  description: `Checks config files with the agent's own parser and rules, without touching the node.
Each FILE is a config file (YAML or JSON) or a Kubernetes manifest holding the ConfigMap (its
data.config); each DIR is read as the agent reads --config=DIR (files named ip-masq* merged in
name order). With no argument, checks --config (default ${DEFAULT_CONFIG_PATH}).
Every error is printed as FILE:LINE:COLUMN: error: KEY-PATH: message. Warnings (redundant or
contained CIDRs, CIDRs inside link-local, a list near cidrLimit, ignored ConfigMap keys) do not
make a config invalid. IPv6 CIDRs are errors unless --enable-ipv6 is given, as in the agent.
Hard limits, whatever cidrLimit says: ${MAX_CONFIG_BYTES.toLocaleString('en')} bytes per file and for all files of a
directory together, ${MAX_CONFIG_NODES.toLocaleString('en')} values per file, and at most this many CIDRs per backend:
${describeCidrCaps()}. --backend and --iptables-mode (the agent's flags) pick the cap
checked; with --iptables-mode=auto, the smaller iptables one.
The same prefix with two different actions (nonMasqueradeCIDRs, masqueradeCIDRs, snat) is an
error naming both places; an entry whose action equals the one it is nested in is a warning.
Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error.`,
  examples: [
    'ip-masq-agent validate deploy/examples/configmap.yaml      # the ConfigMap manifest in your repository',
    'ip-masq-agent validate --enable-ipv6 --output json ./ip-masq-agent.yaml',
    'kubectl -n kube-system exec ds/ip-masq-agent -- ip-masq-agent validate   # the config the agent has mounted',
  ],
};

/** The outcome of checking one path. */
interface Checked {
  readonly path: string;
  readonly errors: readonly ConfigIssue[];
  readonly warnings: readonly ConfigIssue[];
  readonly loaded?: CommandConfig;
}

/** Warnings about a valid config that the loader does not give: redundancy, link-local, the limit. */
export function configWarnings(cfg: CommandConfig): ConfigIssue[] {
  const { config } = cfg;
  const warnings: ConfigIssue[] = [];
  const warn = (e: { source: string; path: string }, message: string): void => {
    warnings.push({ source: e.source, path: e.path, ...cfg.positions?.of(e), message });
  };
  const policy = buildPolicy(config, { enableIPv6: true, randomFully: false, toPorts: [] });
  if (policy.families.some(usesDecisions)) {
    // Longest-prefix decisions: an entry is redundant when the one it is nested in decides the same.
    for (const r of policy.families.flatMap((fp) => findRedundantRows(fp))) {
      if (r.row.source !== 'defaults') warn(r.row, describeRedundantRow(r));
    }
    return [...warnings, ...limitWarning(cfg)];
  }
  const fromConfig = config.nonMasqueradeCIDRs.filter((e) => e.source !== 'defaults').map((e): ExemptRange => ({ cidr: e.cidr, text: e.text, reason: 'config', source: e.source, path: e.path }));

  for (const d of normalizeRanges(fromConfig).dropped) {
    const what = `${d.reason === 'duplicate' ? 'repeats' : 'lies inside'} ${d.by.text} (${describeEntryOrigin(cfg, d.by)})`;
    warn(d.range, `${d.range.text} ${what}, which already keeps it unmasqueraded; the entry changes nothing and can go`);
  }

  const linkLocal = [
    { cidr: parseCidr(LINK_LOCAL_V4), text: LINK_LOCAL_V4, masq: config.masqLinkLocal, key: 'masqLinkLocal' },
    { cidr: parseCidr(LINK_LOCAL_V6), text: LINK_LOCAL_V6, masq: config.masqLinkLocalIPv6, key: 'masqLinkLocalIPv6' },
  ];
  for (const e of fromConfig) {
    for (const ll of linkLocal) {
      if (!ll.masq && cidrContainsCidr(ll.cidr, e.cidr)) {
        warn(e, `${e.text} lies inside link-local ${ll.text}, which is never masqueraded while ${ll.key} is false; the entry changes nothing`);
      } else if (ll.masq && cidrContainsCidr(e.cidr, ll.cidr)) {
        warn(e, `${ll.key} is true, but ${e.text} covers all of link-local ${ll.text} and keeps it unmasqueraded anyway`);
      }
    }
  }

  return [...warnings, ...limitWarning(cfg)];
}

/** A warning when the CIDRs of all lists come near cidrLimit. */
function limitWarning(cfg: CommandConfig): ConfigIssue[] {
  const count = allListEntries(cfg.config).length;
  const limit = cfg.config.cidrLimit;
  if (cfg.usingDefaults || limit <= 0 || count < Math.ceil(limit * 0.9)) return [];
  const message = `${count} of the ${limit} CIDRs cidrLimit allows are used; past ${limit} the agent rejects the whole config. Raise cidrLimit before adding more`;
  return [{ source: cfg.files[0] ?? cfg.path, path: 'cidrLimit', message }];
}

async function checkPath(path: string, explicit: boolean, opts: ConfigOptions): Promise<Checked> {
  let loaded: CommandConfig;
  try {
    loaded = await loadCommandConfig(path, opts);
  } catch (e) {
    if (e instanceof ConfigError) return { path, errors: e.issues, warnings: [] };
    throw e;
  }
  if (loaded.files.length === 0) {
    const issue: ConfigIssue = {
      source: path,
      path: '',
      message: 'no config file here (the path does not exist, or is a directory without files named ip-masq*); the agent would run with the defaults',
    };
    // Checking the node's default path, "no file" is a legal state; a path someone named is a mistake.
    return explicit ? { path, errors: [issue], warnings: [] } : { path, errors: [], warnings: [issue], loaded };
  }
  return { path, errors: [], warnings: [...loaded.warnings, ...configWarnings(loaded)], loaded };
}

function issueJson(i: ConfigIssue): Record<string, unknown> {
  return { source: i.source, ...(i.line === undefined ? {} : { line: i.line, column: i.column ?? 1 }), path: i.path, message: i.message };
}

/** `file:line:col: error: path: message`, the form editors and CI annotations understand. */
export function formatSeverity(issue: ConfigIssue, severity: 'error' | 'warning'): string {
  // formatIssue writes `where: path: message`, or `where: message` without a path.
  return formatIssue({ ...issue, path: issue.path ? `${severity}: ${issue.path}` : severity });
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** The config in one line, as the key descriptors' summary forms say: `3 non-masquerade CIDRs (cidrLimit 64), resyncInterval 1m0s`. */
function configSummary(cfg: MasqConfig): string {
  const counts: string[] = [];
  const aside: string[] = [];
  const after: string[] = [];
  for (const key of CONFIG_KEYS) {
    const form = (KEYS[key] as KeyDescriptor).summary;
    if (form === undefined || !isKeyShown(cfg, key)) continue;
    if (typeof form === 'object') counts.push(plural((cfg[key as ListKey] ?? []).length, form.count));
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a key summarised as `key value` is a scalar (keys.ts)
    else (form === 'parenthesized' ? aside : after).push(`${key} ${String(cfg[key])}`);
  }
  return `${counts.join(', ')}${aside.length > 0 ? ` (${aside.join(', ')})` : ''}${after.map((a) => `, ${a}`).join('')}`;
}

function summary(c: Checked): string {
  if (c.errors.length > 0) {
    return `${c.path}: invalid: ${plural(c.errors.length, 'error')}${c.warnings.length ? `, ${plural(c.warnings.length, 'warning')}` : ''}`;
  }
  const cfg = c.loaded!.config;
  const what = c.loaded!.usingDefaults ? 'no key set, the agent uses the defaults' : configSummary(cfg);
  return `${c.path}: valid: ${what}${c.warnings.length ? `; ${plural(c.warnings.length, 'warning')}` : ''}`;
}

/** Runs `validate`; exit 0 valid, 1 invalid, 2 usage error. */
export const runValidate = defineCommand({
  name: 'validate',
  help: HELP,
  agentFlags: ['enable-ipv6', 'nomasq-all-reserved-ranges', 'config', 'backend'],
  takesArguments: true,
  run: async ({ flags, opts, output, io }) => {
    const explicit = flags.positional.length > 0 || flags.set.has('config');
    const paths = [...(flags.set.has('config') ? [opts.configPath] : []), ...flags.positional];
    if (paths.length === 0) paths.push(opts.configPath);
    const checked: Checked[] = [];
    for (const path of paths) checked.push(await checkPath(path, explicit, opts.config));
    const valid = checked.every((c) => c.errors.length === 0);

    if (output === 'json') {
      writeJson(io, {
        valid,
        files: checked.flatMap((c) => c.loaded?.files ?? []),
        errors: checked.flatMap((c) => c.errors.map(issueJson)),
        warnings: checked.flatMap((c) => c.warnings.map(issueJson)),
        configs: checked.map((c) => ({
          path: c.path,
          valid: c.errors.length === 0,
          ...(c.loaded && {
            files: c.loaded.files,
            usingDefaults: c.loaded.usingDefaults,
            ...configValues(c.loaded.config, 'output'),
          }),
        })),
      });
    } else {
      for (const c of checked) {
        for (const e of c.errors) io.stdout(`${formatSeverity(e, 'error')}\n`);
        for (const w of c.warnings) io.stdout(`${formatSeverity(w, 'warning')}\n`);
        io.stdout(`${summary(c)}\n`);
      }
    }
    return valid ? EXIT.ok : EXIT.failed;
  },
});
