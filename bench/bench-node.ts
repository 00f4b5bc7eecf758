// What the agent-process benchmarks share: a namespace with its own ConfigMap dir, xtables lock
// and one agent (HTTP on, as deployed, with the image's NODE_OPTIONS), and the image's flags read
// from the Dockerfile so the figures are the deployed ones.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createNamespace, deleteNamespace } from '../test/netns/netns.js';
import { createConfigMapDir, createPrivateLock, startAgent, type AgentProcess, type ConfigMapDir } from '../test/agent/agent-process.js';

/** The image's NODE_OPTIONS (Dockerfile `ENV NODE_OPTIONS=...`, quotes removed). */
export function imageNodeOptions(): string {
  const dockerfile = readFileSync(fileURLToPath(new URL('../../Dockerfile', import.meta.url)), 'utf8');
  const value = /^ENV NODE_OPTIONS=(.*)$/m.exec(dockerfile)?.[1]?.trim() ?? '';
  return value.replace(/^"(.*)"$/, '$1');
}

/** A namespace with its own ConfigMap dir and xtables lock and one agent in it, torn down by close. */
export interface BenchNode {
  readonly ns: string;
  readonly cm: ConfigMapDir;
  readonly agent: AgentProcess;
  /** The private xtables lock's environment, for raw commands run beside the agent. */
  readonly lockEnv: Readonly<Record<string, string>>;
  /** Date.now() just before the agent was spawned. */
  readonly spawnedAt: number;
  close(): Promise<void>;
}

/** What startBenchNode may vary: extra agent flags, NODE_OPTIONS ('' for none), a prefix that execs another build. */
export interface BenchNodeOptions {
  readonly flags?: readonly string[];
  readonly nodeOptions?: string;
  readonly prefix?: readonly string[];
}

/** Starts an agent on `text` in a fresh namespace: `--config`, `--v=2`, HTTP on the default addresses, then `flags`. */
export function startBenchNode(role: string, text: string, o: BenchNodeOptions = {}): BenchNode {
  const ns = createNamespace(role);
  const cm = createConfigMapDir();
  const lock = createPrivateLock();
  cm.write(text);
  const http = ['--healthz-bind-address=127.0.0.1:10264', '--metrics-bind-address=127.0.0.1:10265'];
  const nodeOptions = o.nodeOptions ?? imageNodeOptions();
  const env = nodeOptions ? { ...lock.env, NODE_OPTIONS: nodeOptions } : lock.env;
  const spawnedAt = Date.now();
  const agent = startAgent(ns, [`--config=${cm.file}`, '--v=2', ...http, ...(o.flags ?? [])], { env, ...(o.prefix ? { prefix: o.prefix } : {}) });
  return {
    ns,
    cm,
    agent,
    lockEnv: lock.env,
    spawnedAt,
    close: async () => {
      await agent.kill();
      deleteNamespace(ns);
      cm.cleanup();
      lock.cleanup();
    },
  };
}

/** The agent's pid must be the node process itself (`ip netns exec` execs it), or /proc figures lie. */
export function assertIsNode(pid: number): void {
  const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  if (cmd !== process.execPath) throw new Error(`pid ${pid} runs ${cmd}, not node`);
}
