// `ip-masq-agent render [flags]` (its help says what it prints): the backend's render(), the text
// its apply() writes, so what is printed cannot differ from what the agent would write.
import type { RenderedPayload } from '../backends/backend.js';
import { chooseBackendKind, createRenderOnlyBackend } from '../backends/select.js';
import { formatIssue } from '../errors.js';
import { buildPolicy } from '../policy/build.js';
import { KEEPS_LAST_GOOD_RULES, defineCommand } from './command-shape.js';
import { EXIT, FAMILY_NAME, writeJson } from './command.js';

const HELP = {
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
};

/** Text output: each family's payload under a comment header; the jump as a comment after it. */
export function formatRenderedText(families: readonly RenderedPayload[]): string {
  return families
    .map((f) => {
      const head = `# ${FAMILY_NAME[f.family]}: piped into \`${f.command}\`\n`;
      const then = f.followUp;
      // The agent finds the jump in its `-S POSTROUTING` read-back; it never runs `-C` for it.
      const when =
        then?.when === 'keep-first'
          ? 'then the jump, as rule 1 (moved back to the top whenever another rule is above it)'
          : 'then, if missing, the jump (looked for in -S POSTROUTING, never duplicated)';
      const jump = then === undefined ? '' : `# ${when}:\n#   ${then.command}\n`;
      return `${head}${f.payload}${jump}`;
    })
    .join('\n');
}

/** Runs `render`; exit 0 printed, 1 invalid config, 2 usage error. */
export const runRender = defineCommand({
  name: 'render',
  help: HELP,
  agentFlags: ['backend', 'config', 'masq-chain', 'enable-ipv6', 'random-fully', 'to-ports', 'nomasq-all-reserved-ranges', 'postrouting-position', 'iptables-masquerade-bit'],
  invalidConfig: KEEPS_LAST_GOOD_RULES,
  run: async ({ opts, output, io, select, loadConfig }) => {
    const cfg = await loadConfig();
    for (const w of cfg.warnings) io.stderr(`warning: ${formatIssue(w)}\n`);
    if (cfg.usingDefaults) io.stderr(`note: no config sets any key at ${cfg.path}; rendering the agent's defaults\n`);

    // Without --backend=auto this only names the flag's backend; it looks (read-only) only for auto.
    const { kind, reason } = await chooseBackendKind(select);
    if (opts.backend === 'auto') io.stderr(`note: --backend=auto chose ${kind} on this host: ${reason}\n`);
    const backend = createRenderOnlyBackend(kind, opts.chain);
    const families = buildPolicy(cfg.config, opts.policy).families.map((p) => backend.render(p));
    if (output === 'json') {
      writeJson(io, {
        backend: kind,
        ...(kind === 'iptables' ? { assumes: 'iptables >= 1.6.2 (knows --random-fully)' } : {}),
        families: families.map((f) => ({ family: f.family, command: f.command, payload: f.payload, ...(f.followUp === undefined ? {} : { jump: f.followUp.command }) })),
      });
    } else {
      io.stdout(formatRenderedText(families));
    }
    return EXIT.ok;
  },
});
