import { parseRuleLine } from './rules.js';

/**
 * Finds the nat POSTROUTING rules (as `iptables -S POSTROUTING` prints them) that come before our
 * jump and end in MASQUERADE or SNAT: a packet they match is translated before our chain can
 * exempt it. When our jump is missing, every such rule counts.
 */
export function findShadowingRules(postrouting: readonly string[], chain: string): string[] {
  const found: string[] = [];
  for (const line of postrouting) {
    const rule = parseRuleLine(line);
    if (rule?.chain !== 'POSTROUTING') continue;
    if (rule.target === chain) break;
    if (rule.target === 'MASQUERADE' || rule.target === 'SNAT') found.push(line);
  }
  return found;
}
