/**
 * Finds the nat POSTROUTING rules (as `iptables -S POSTROUTING` prints them) that come before our
 * jump and end in MASQUERADE or SNAT: a packet they match is translated before our chain can
 * exempt it. When our jump is missing, every such rule counts.
 */
export function findShadowingRules(postrouting: readonly string[], chain: string): string[] {
  const found: string[] = [];
  for (const line of postrouting) {
    if (!line.startsWith('-A POSTROUTING ')) continue;
    if (line.endsWith(` -j ${chain}`)) break;
    if (/ -j (MASQUERADE|SNAT)( |$)/.test(line)) found.push(line);
  }
  return found;
}
