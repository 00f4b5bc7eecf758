// `ip-masq-agent explain [flags] IP...` (its help says what it answers). Touches nothing: it
// evaluates the same policy the rules are rendered from.
import type { BackendFacts } from '../backends/backend.js';
import { createRenderOnlyBackend, openBackendReadOnly, type SelectOptions } from '../backends/select.js';
import { CidrError, formatCidr, parseIp, type IpAddress } from '../net/cidr.js';
import { UsageError, errorMessage } from '../errors.js';
import { buildPolicy, explainDestination, masqueradeMarkHex, type Verdict } from '../policy/build.js';
import type { DecisionCount, Policy, PostroutingPosition } from '../policy/types.js';
import type { Decision } from '../policy/decide.js';
import { EXIT, writeJson, type CommandDeps } from './command.js';
import { KEEPS_LAST_GOOD_RULES, defineCommand, describeEntryOrigin, type CommandConfig } from './command-shape.js';
import type { FlagSpec } from './flags.js';

/** A flag of explain's own: a string, empty by default. */
const ownFlag = (name: string, help: string): FlagSpec => ({ name, kind: 'string', default: '', help });

const LOCAL_FLAG = ownFlag('local', "The node's own addresses, comma-separated: traffic to them is never masqueraded (the jump skips LOCAL destinations).");
const COUNTS_FLAG: FlagSpec = {
  name: 'counts',
  kind: 'bool',
  default: 'false',
  help: "Also read the live rules' counters (needs NET_ADMIN; give the agent's --backend and --masq-chain): the connections the deciding rule took since the rules were last written.",
};
const SOURCE_FLAG = ownFlag('source', 'The source address of the traffic (default: a pod address). With masqueradeSourceCIDRs, a source outside them is never masqueraded or SNATed.');

const HELP = {
  usage: 'ip-masq-agent explain [flags] IP...',
  description: `For each destination IP, says whether traffic from a pod (or from --source) to it is
masqueraded (leaves with the node's address), SNATed to a fixed address, or keeps the pod IP, and
why: the entry that decides (the longest matching prefix: its list, CIDR and where it is written,
file:line:column and key path), link-local, a local address of the node, a source outside
masqueradeSourceCIDRs, or IPv6 turned off. Reads the config as the agent does (--config, a directory, or a ConfigMap manifest)
and touches nothing. Give the same flags as the agent (--enable-ipv6, --random-fully, ...).
With --counts it also reads the live rules' counters: the connections the deciding rule took.
Exit status: 0 answered, 1 invalid config, 2 usage error (e.g. not an IP address), 3 --counts
could not read the counters.`,
  examples: [
    'ip-masq-agent explain 10.1.2.3 203.0.113.7 169.254.169.254',
    'ip-masq-agent explain --source 10.244.1.5 10.9.0.1',
    'ip-masq-agent explain --config deploy/examples/configmap.yaml --enable-ipv6 2001:db8::1 --output json',
  ],
};

/** One destination's answer, as `--output json` prints it; `connections` (with --counts): what the deciding rule counted. */
export type Explanation = ReturnType<typeof describeVerdict> & { readonly connections?: number };

function parseAddress(text: string, what: string): IpAddress {
  try {
    return parseIp(text);
  } catch (e) {
    if (!(e instanceof CidrError)) throw e;
    const hint = text.includes('/') ? ' (give a single address, not a CIDR)' : '';
    throw new UsageError(`${what} "${text}" is not an IP address${hint}: ${e.message}`);
  }
}

/** The masquerade (or SNAT) rule in the chosen backend's own words. */
function masqueradeRule(v: Extract<Verdict, { masquerade: true }>, backend: BackendFacts['dialect'], toSource?: string): string {
  const portList = v.toPorts.map((r) => r.text).join(',');
  const ports = portList === '' ? '' : `; tcp, udp and sctp get source ports ${portList}`;
  if (backend === 'nftables') return `${toSource === undefined ? 'masquerade' : `snat to ${toSource}`}${v.randomFully ? ' fully-random' : ''}${ports}`;
  return `${toSource === undefined ? 'MASQUERADE' : `SNAT --to-source ${toSource}`}${v.randomFully ? ' --random-fully' : ''}${ports}`;
}

/** "beats the shorter X (list, where)" when a longer prefix wins over a shorter one. */
function overridesText(cfg: CommandConfig, d: Decision | undefined): string {
  if (d === undefined) return '';
  const action = d.action.kind === 'keep' ? 'keep the pod IP' : d.action.kind === 'snat' ? `SNAT to ${d.action.toSourceText}` : 'masquerade';
  const where = d.list === 'link-local' ? 'built-in link-local' : describeEntryOrigin(cfg, d);
  return `; the longest matching prefix wins over the shorter ${d.text} (${d.list}, ${where}: ${action})`;
}

/**
 * What `--postrouting-position=first` adds to a "keep pod IP" answer: the exemption is final
 * against later rules, except for traffic kube-proxy marked; undefined with `append`.
 */
export function positionNote(position: PostroutingPosition | undefined, bit: number | undefined, backend: BackendFacts['dialect']): string | undefined {
  if (position !== 'first') return undefined;
  const mark = masqueradeMarkHex(bit);
  const how =
    backend === 'nftables'
      ? 'an exemption binds the source to itself in a chain that runs before srcnat, so no later nat chain translates it'
      : 'our jump is rule 1 of nat POSTROUTING and an exemption ends it (ACCEPT), so no later MASQUERADE rule there translates it';
  return `--postrouting-position=first: ${how}; traffic kube-proxy marked ${mark}/${mark} is still passed on to kube-proxy's MASQUERADE rule`;
}

/** Explains one verdict for people and scripts alike. */
export function describeVerdict(destination: string, v: Verdict, cfg: CommandConfig, backend: BackendFacts['dialect']) {
  const head = { destination, family: v.family, masquerade: v.masquerade };
  const m = 'match' in v ? v.match : undefined;
  const match = m && { list: m.list, cidr: formatCidr(m.cidr), source: m.source, path: m.path, ...cfg.positions?.of(m) };
  const matched = m && `matches ${m.text} from ${describeEntryOrigin(cfg, m)}`;
  const over = 'overrides' in v ? overridesText(cfg, v.overrides) : '';
  const keep = (reason: string, explanation: string) => ({ ...head, action: 'keep' as const, reason, ...(match && { match }), explanation });
  if (v.masquerade) {
    // A masquerade or SNAT answer: keep's fields, and the rule's options before the sentence.
    const toSource = m?.action.kind === 'snat' ? m.action.toSourceText : undefined;
    const action = toSource === undefined ? { action: 'masquerade' as const } : { action: 'snat' as const, toSource };
    const rule = { randomFully: v.randomFully, toPorts: v.toPorts.map((r) => r.text) };
    const why = m === undefined ? 'no non-masquerade CIDR matches' : `${matched} (${m.list})${over}`;
    const explanation = `${why}; ${masqueradeRule(v, backend, toSource)}`;
    return { ...head, ...action, reason: v.reason === 'default' ? 'masquerade' : v.reason, ...(match && { match }), ...rule, explanation };
  }
  switch (v.reason) {
    case 'source-out-of-scope':
      return keep(
        'source-out-of-scope',
        `the source is outside masqueradeSourceCIDRs (${v.sources.map((s) => s.text).join(', ') || `none of ${v.family}`}): only traffic from those sources is ever masqueraded or SNATed`,
      );
    case 'exempt':
      if (v.match.list === 'link-local') {
        const key = v.family === 'ipv4' ? 'masqLinkLocal' : 'masqLinkLocalIPv6';
        return keep('link-local', `link-local ${v.match.text} is not masqueraded while ${key} is false${over}`);
      }
      return keep('non-masquerade-cidr', `${matched}${over}`);
    case 'local':
      return keep('local', 'a local address of the node (--local): the POSTROUTING jump skips LOCAL destinations');
    case 'family-disabled':
      return keep('family-disabled', 'IPv6 is off: without --enable-ipv6 the agent writes no IPv6 rules, so it masquerades nothing here');
  }
}

// Reasons a rule of ours decides; the others (local, out of scope, IPv6 off) never reach a counting rule.
const COUNTED_REASONS = new Set(['masquerade', 'masquerade-cidr', 'snat', 'non-masquerade-cidr', 'link-local']);

/** The count of the entry that decided an answer (no match: the default), when one counter stands for it alone. */
function countOf(counts: readonly DecisionCount[], a: Explanation): DecisionCount | undefined {
  const m = a.match;
  const same = counts.filter((c) => c.family === a.family && (m === undefined ? c.list === 'default' : c.list === m.list && c.cidr === m.cidr));
  // The same CIDR twice, or nft's one masquerade rule for two lists: no one count is the entry's.
  return COUNTED_REASONS.has(a.reason) && same.length === 1 ? same[0] : undefined;
}

/** The connections the deciding rule counted, read from the backend the agent would use. */
async function withConnections(answers: Explanation[], policy: Policy, deps: CommandDeps, select: SelectOptions): Promise<Explanation[]> {
  const opened = await (deps.openBackend ?? openBackendReadOnly)(select);
  const counts: readonly DecisionCount[] = (await opened.backend.counters?.(policy.families)) ?? [];
  return answers.map((a) => {
    const c = countOf(counts, a);
    return c === undefined ? a : { ...a, connections: c.packets };
  });
}

function label(e: Explanation): string {
  if (e.action === 'snat') return `SNAT to ${e.toSource ?? ''}`;
  if (e.masquerade) return 'masquerade';
  return e.reason === 'family-disabled' ? 'not handled' : 'keep pod IP';
}

/** Runs `explain`; exit 0 answered, 1 invalid config, 2 usage error. */
export const runExplain = defineCommand({
  name: 'explain',
  help: HELP,
  agentFlags: ['config', 'enable-ipv6', 'nomasq-all-reserved-ranges', 'random-fully', 'to-ports', 'backend', 'postrouting-position', 'iptables-masquerade-bit', 'iptables-mode', 'masq-chain'],
  ownFlags: [LOCAL_FLAG, SOURCE_FLAG, COUNTS_FLAG],
  takesArguments: true,
  invalidConfig: KEEPS_LAST_GOOD_RULES,
  run: async ({ flags, opts, output, io, deps, select, loadConfig }) => {
    if (flags.positional.length === 0) throw new UsageError('give at least one destination IP address, e.g. explain 203.0.113.7');
    const destinations = flags.positional.map((text) => ({ text, ip: parseAddress(text, 'destination') }));
    const localText = flags.values.get('local') ?? '';
    const locals = localText === '' ? [] : localText.split(',').map((t) => parseAddress(t.trim(), '--local'));
    const isLocal = (ip: IpAddress): boolean => locals.some((l) => l.family === ip.family && l.value === ip.value);
    const sourceText = (flags.values.get('source') ?? '').trim();
    const source = sourceText === '' ? undefined : parseAddress(sourceText, '--source');

    const cfg = await loadConfig();
    const policy = buildPolicy(cfg.config, opts.policy);
    // Touches nothing, so --backend=auto is not decided here: it reads as iptables, the default.
    const { dialect } = createRenderOnlyBackend(opts.backend === 'nftables' ? 'nftables' : 'iptables', opts.chain).describe();
    let answers = destinations.map((d) => describeVerdict(d.text, explainDestination(policy, d.ip, isLocal, source), cfg, dialect));
    if (flags.values.get('counts') === 'true') {
      try {
        answers = await withConnections(answers, policy, deps, select);
      } catch (e) {
        io.stderr(`ip-masq-agent explain: cannot read the rules' counters: ${errorMessage(e)}\n`);
        return EXIT.cannotCheck;
      }
    }

    if (output === 'json') {
      writeJson(io, answers);
      return EXIT.ok;
    }
    const width = Math.max(...answers.map((a) => a.destination.length));
    const labelWidth = Math.max(...answers.map((a) => label(a).length));
    const counted = (a: Explanation): string => (a.connections === undefined ? '' : `; the deciding rule counted ${a.connections} connections since the rules were last written`);
    for (const a of answers) io.stdout(`${a.destination.padEnd(width)}  ${label(a).padEnd(labelWidth)}  (${a.explanation}${counted(a)})\n`);
    if (cfg.usingDefaults) io.stdout(`note: no config sets any key at ${cfg.path}; the agent's defaults are in use\n`);
    if (source === undefined && policy.families.some((f) => f.sources !== undefined)) {
      io.stdout('note: masqueradeSourceCIDRs is set; these answers are for a source inside it (a pod); give --source IP for another source\n');
    }
    if (locals.length === 0 && answers.some((a) => a.masquerade)) {
      io.stdout("note: the node's own addresses are never masqueraded (the jump skips LOCAL destinations); name them with --local\n");
    }
    const note = positionNote(opts.policy.postroutingPosition, opts.policy.masqueradeBit, dialect);
    if (note !== undefined && answers.some((a) => !a.masquerade && a.reason !== 'family-disabled')) io.stdout(`note: ${note}\n`);
    return EXIT.ok;
  },
});
