import { isIP, isIPv6 } from 'node:net';
import { UsageError } from '../errors.js';

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const EXAMPLES = 'use host:port, e.g. 127.0.0.1:10264, [::1]:10264 or :10264 (all interfaces), or "0" or "" to disable';

/**
 * Parses a kube-proxy style bind address (`127.0.0.1:10264`, `[::1]:10264`, `:10264`, `localhost:10264`)
 * into where a server listens (no host: every interface, as Go's `:port`); returns undefined for
 * `''` and `'0'`, which disable the server. Throws UsageError naming `flag`.
 */
export function parseBindAddress(text: string, flag: string): { readonly host?: string; readonly port: number } | undefined {
  const t = text.trim();
  if (t === '' || t === '0') return undefined;
  const bad = (why: string): UsageError => new UsageError(`${flag}: "${text}" ${why}; ${EXAMPLES}`);
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(t);
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2] ?? '';
    if (!isIPv6(host)) throw bad('has brackets around something that is not an IPv6 address');
  } else if (t.startsWith('[')) {
    throw bad(/^\[[^\]]*\]$/.test(t) ? 'has no port' : 'has an unclosed "["');
  } else {
    const colon = t.lastIndexOf(':');
    if (colon < 0) throw bad('has no port');
    host = t.slice(0, colon);
    portText = t.slice(colon + 1);
    if (host.includes(':')) throw bad('looks like an IPv6 address without brackets');
    if (host !== '' && isIP(host) === 0 && (!HOSTNAME.test(host) || /^[0-9.]+$/.test(host))) {
      throw bad(`has "${host}", which is neither an IP address nor a host name`);
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) throw bad(`has "${portText}", which is not a port (0-65535)`);
  const port = Number(portText);
  return host === '' ? { port } : { host, port };
}

/**
 * Formats an address for URLs and logs: IPv6 hosts in brackets. Of the addresses a listening
 * socket reports, only IPv6 ones hold a ":"; a first isIPv6() would cost about 5 ms at start
 * (it compiles node's IPv6 pattern), before the first rules.
 */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
