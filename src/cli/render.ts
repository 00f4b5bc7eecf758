// `ip-masq-agent render [flags]`: prints exactly what the agent would write (the
// iptables-restore payload and the jump, or the nft script), touching nothing.
import { chooseBackendKind } from '../backends/select.js';
import { jumpComment } from '../backends/iptables/constants.js';
import { renderRestorePayload } from '../backends/iptables/render.js';
import { renderNftScript } from '../backends/nftables/render.js';
import { readRegularFileText } from '../config/read-text.js';
import { ConfigError, formatIssue } from '../errors.js';
import type { Family } from '../net/cidr.js';
import { buildPolicy, exemptionIsFinal, type FamilyPolicy } from '../policy.js';
import { agentOptionsFromFlags } from './agent-options.js';
import { EXIT, silentLog, withUsageErrors, writeJson, type CommandDeps, type CommandIo } from './command.js';
import { loadCommandConfig, type CommandConfig } from './command-config.js';
import { OUTPUT_FLAG, commandFlagSpecs, formatCommandHelp, outputFormat, parseCommandArgs, rejectPositional } from './command-flags.js';

const SPECS = commandFlagSpecs(
  ['backend', 'config', 'masq-chain', 'enable-ipv6', 'random-fully', 'to-ports', 'nomasq-all-reserved-ranges', 'postrouting-position', 'iptables-masquerade-bit'],
  [OUTPUT_FLAG],
);

/** `render --help`. */
export const RENDER_HELP = formatCommandHelp(
  {
    usage: 'ip-masq-agent render [--backend=iptables|nftables] [flags] [--config PATH]',
    description: `Prints exactly what the agent would write for this config and these flags, touching nothing:
for iptables, per family, the iptables-restore --noflush payload and (as a comment) the
POSTROUTING jump the agent adds when it is missing; for nftables, per family, the nft -f script.
The iptables payload assumes iptables >= 1.6.2 (every current distribution), which knows
--random-fully; on an older iptables the agent leaves --random-fully out. With --backend=auto the
choice is made as the agent makes it, by looking (read-only) at this host.
Exit status: 0 printed, 1 invalid config, 2 usage error.`,
    examples: [
      'ip-masq-agent render --config ./ip-masq-agent.yaml',
      'ip-masq-agent render --backend=nftables --enable-ipv6 --to-ports=1024-29999,32768-65535',
      'ip-masq-agent render --config ./ip-masq-agent.yaml > ipv4.rules && iptables-restore --test --noflush < ipv4.rules',
    ],
  },
  SPECS,
);

const FAMILY_NAME: Record<Family, string> = { ipv4: 'IPv4', ipv6: 'IPv6' };
const IPTABLES: Record<Family, string> = { ipv4: 'iptables', ipv6: 'ip6tables' };

/** What the agent writes for one family. */
interface RenderedFamily {
  readonly family: Family;
  /** The command the payload is piped into. */
  readonly command: string;
  readonly payload: string;
  /** iptables only: the jump, as a command line, added after the payload when missing. */
  readonly jump?: string;
  /** iptables only: the jump must stay rule 1 (`--postrouting-position=first`). */
  readonly jumpFirst?: boolean;
}

function shellQuote(word: string): string {
  // A lone `!` is safe in every shell; quoting it would invite bash's history expansion.
  return word === '!' || /^[A-Za-z0-9_.:/=,@%+-]+$/.test(word) ? word : `"${word.replace(/(["\\$`])/g, '\\$1')}"`;
}

/** The iptables payload and jump of one family, as the agent writes them. */
export function renderIptablesFamily(p: FamilyPolicy, chain: string): RenderedFamily {
  const first = exemptionIsFinal(p);
  const jump = [IPTABLES[p.family], '-t', 'nat', ...(first ? ['-I', 'POSTROUTING', '1'] : ['-A', 'POSTROUTING']), '-m', 'comment', '--comment', jumpComment(chain), '-m', 'addrtype', '!', '--dst-type', 'LOCAL', '-j', chain];
  return {
    family: p.family,
    command: `${IPTABLES[p.family]}-restore --noflush`,
    payload: renderRestorePayload(p, { chain, randomFully: p.randomFully }),
    jump: jump.map(shellQuote).join(' '),
    ...(first ? { jumpFirst: true } : {}),
  };
}

/** The nft script of one family, as the agent writes it (one transaction per family). */
export function renderNftablesFamily(p: FamilyPolicy): RenderedFamily {
  return { family: p.family, command: 'nft -f -', payload: renderNftScript([p]) };
}

/** Text output: each family's payload under a comment header; the jump as a comment after it. */
export function formatRenderedText(families: readonly RenderedFamily[]): string {
  return families
    .map((f) => {
      const head = `# ${FAMILY_NAME[f.family]}: piped into \`${f.command}\`\n`;
      const when = f.jumpFirst
        ? 'then the jump, as rule 1 (moved back to the top whenever another rule is above it)'
        : 'then, if missing, the jump (checked with -C, never duplicated)';
      const jump = f.jump === undefined ? '' : `# ${when}:\n#   ${f.jump}\n`;
      return `${head}${f.payload}${jump}`;
    })
    .join('\n');
}

/** Runs `render`; exit 0 printed, 1 invalid config, 2 usage error. */
export async function runRender(argv: readonly string[], io: CommandIo, deps: CommandDeps): Promise<number> {
  return withUsageErrors(io, 'render', async () => {
    const flags = parseCommandArgs(argv, SPECS);
    if (flags.help) {
      io.stdout(RENDER_HELP);
      return EXIT.ok;
    }
    const opts = agentOptionsFromFlags(flags);
    rejectPositional(flags, 'render');
    let cfg: CommandConfig;
    try {
      cfg = await loadCommandConfig(opts.configPath, opts.config, deps.readText ?? readRegularFileText);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      io.stderr(`ip-masq-agent render: the config is invalid; the agent would keep its last good rules:\n${e.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}\n`);
      return EXIT.failed;
    }
    for (const w of cfg.warnings) io.stderr(`warning: ${formatIssue(w)}\n`);
    if (cfg.usingDefaults) io.stderr(`note: no config sets any key at ${cfg.path}; rendering the agent's defaults\n`);

    let kind: 'iptables' | 'nftables';
    if (opts.backend === 'auto') {
      const chosen = await chooseBackendKind({ backend: 'auto', iptablesMode: opts.iptablesMode, chain: opts.chain, runner: deps.runner, log: silentLog });
      kind = chosen.kind;
      io.stderr(`note: --backend=auto chose ${kind} on this host: ${chosen.reason}\n`);
    } else {
      kind = opts.backend;
    }
    const policy = buildPolicy(cfg.config, opts.policy);
    const families = policy.families.map((p) => (kind === 'iptables' ? renderIptablesFamily(p, opts.chain) : renderNftablesFamily(p)));
    if (outputFormat(flags) === 'json') {
      writeJson(io, {
        backend: kind,
        ...(kind === 'iptables' ? { assumes: 'iptables >= 1.6.2 (knows --random-fully)' } : {}),
        families: families.map((f) => ({ family: f.family, command: f.command, payload: f.payload, ...(f.jump === undefined ? {} : { jump: f.jump }) })),
      });
    } else {
      io.stdout(formatRenderedText(families));
    }
    return EXIT.ok;
  });
}
