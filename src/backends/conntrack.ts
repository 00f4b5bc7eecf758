// Deletes the conntrack entries of flows a policy change re-decided (policy/changes.ts), so a
// long-lived UDP flow takes the new translation with its next datagram instead of keeping the old
// one as long as it talks. Called after a successful apply; it never fails the sync.
//
// Filters, as conntrack 1.4.7 can express them (checked in a namespace): CIDR notation exists for
// --orig-src and --orig-dst only. Old translated: `--src-nat`, so kept flows to the same
// destinations stay. Old kept: there is no negated --src-nat, and --reply-dst (the address the
// reply goes to, the pod's when kept) takes no CIDR, so both NAT states go: a translated UDP entry
// there is someone else's or stale, and its next packet makes it again. --orig-dst is where the pod
// sent: for a flow DNATed before our rules (a Service) that is the service address, not the backend
// the rules decided on, which only --reply-src (no CIDR) names; such flows follow their service address.
import { formatCidr, type Cidr, type Family } from '../net/cidr.js';
import type { ChangedDecisions, ChangedFlows } from '../policy/changes.js';
import { conntrackDeleted, type Runner } from '../exec/runner.js';
import { CommandError } from '../errors.js';
import type { Logger } from '../observe/log.js';
import { changedDecisions, countBlockPairs } from '../policy/changes.js';
import type { FamilyPolicy } from '../policy/types.js';

/**
 * Connectionless protocols whose flows are deleted by default: udp, and icmp (a ping left running
 * to check the NAT would otherwise keep the old source). udplite and others are too rare to pay a
 * table walk each for.
 */
const CONNECTIONLESS: Record<Family, readonly string[]> = { ipv4: ['udp', 'icmp'], ipv6: ['udp', 'icmpv6'] };

/** The `conntrack -D` argv for one protocol and one (source, destination) block pair of a change. */
function conntrackDeleteArgv(family: Family, protocol: string, change: Pick<ChangedFlows, 'oldTranslated'>, destination: Cidr, source?: Cidr): string[] {
  const from = source === undefined ? [] : ['--orig-src', formatCidr(source)];
  return ['conntrack', '-D', '-f', family, '-p', protocol, ...from, '--orig-dst', formatCidr(destination), ...(change.oldTranslated ? ['--src-nat'] : [])];
}

/** Every argv the changes need, in order; with `deleteTcp`, tcp and sctp ones too. */
export function staleFlowCommands(changed: ChangedDecisions, deleteTcp = false): string[][] {
  const protocols = [...CONNECTIONLESS[changed.family], ...(deleteTcp ? ['tcp', 'sctp'] : [])];
  return changed.changes.flatMap((c) => c.destinations.flatMap((d) => (c.sources ?? [undefined]).flatMap((s) => protocols.map((p) => conntrackDeleteArgv(changed.family, p, c, d, s)))));
}

/**
 * Deletes the conntrack entries of the flows in `changed`, one command at a time (they contend for
 * the same table); returns the entries deleted, summed, and the commands that failed. Never throws.
 * A missing conntrack or missing privileges stops the rest, which would fail alike.
 */
export async function deleteStaleFlows(run: Runner, changed: ChangedDecisions, deleteTcp = false) {
  let deleted = 0;
  const errors: Error[] = [];
  for (const argv of staleFlowCommands(changed, deleteTcp)) {
    try {
      const r = await run(argv);
      deleted += conntrackDeleted(r) ?? 0;
    } catch (e) {
      // None to delete is exit 1, not a failure.
      if (e instanceof CommandError && e.exitCode === 1 && conntrackDeleted(e) === 0) continue;
      errors.push(e instanceof Error ? e : new Error(String(e)));
      if (e instanceof CommandError && (e.failure === 'not-installed' || e.failure === 'permission-denied')) break;
    }
  }
  return { family: changed.family, deleted, errors };
}

/** What createStaleFlowCleaner needs: the runner, where to log, and the metric to count into. */
export interface StaleFlowCleanerOptions {
  readonly run: Runner;
  /**
   * Also delete tcp and sctp entries (`--conntrack-delete-tcp`). Off by default: such a connection
   * cannot change its source address, so deleting its entry breaks it rather than moving it.
   */
  readonly deleteTcp?: boolean;
  readonly log: Logger;
  readonly countDeleted: (family: Family, deleted: number) => void;
}

/**
 * The agent's afterRulesChange: deletes the conntrack entries of flows that `next` translates
 * otherwise than `old` did, then logs and counts what it did. Never rejects.
 */
export function createStaleFlowCleaner(o: StaleFlowCleanerOptions): (old: FamilyPolicy, next: FamilyPolicy) => Promise<void> {
  return async (old, next) => {
    const changed = changedDecisions(old, next);
    if (changed.changes.length === 0) return;
    const { family, deleted, errors } = await deleteStaleFlows(o.run, changed, o.deleteTcp);
    o.countDeleted(family, deleted);
    const blocks = countBlockPairs(changed.changes);
    o.log.info('deleted the conntrack entries of open flows the new rules translate otherwise', { family, deleted, blocks, ...(changed.widened ? { widened: true } : {}) });
    if (errors.length > 0) {
      o.log.warn('could not delete every stale conntrack entry; those flows keep their old translation while they talk', { family, failed: errors.length, error: errors[0]!.message });
    }
  };
}
