// deploy/monitoring/: the alert rules and their promtool tests, the PrometheusRule generated from
// them, and the Grafana dashboard. Every metric and label they name is one the agent exports, so a
// renamed metric fails here, not silently on an operator's dashboard.
// The promtool checks are skipped, saying so, where promtool is not installed (scripts/setup.sh
// installs it, so CI runs them).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { createMetrics } from '../../src/observe/metrics.js';
import { NO_PRESSURE } from '../../src/observe/conntrack-pressure.js';
import { createDecisionCounts } from '../../src/observe/decision-counts.js';
import { makeStatus, okFamily, T0 } from '../observe/status-fixture.js';
import { asArray, asString, at, readRepoFile, repoRoot, type Yaml } from './deploy-files.js';

const DIR = 'deploy/monitoring';
const RULES = `${DIR}/ip-masq-agent.rules.yaml`;
const RULES_TEST = `${DIR}/ip-masq-agent.rules.test.yaml`;
const PROMETHEUS_RULE = `${DIR}/prometheusrule.yaml`;
const DASHBOARD = `${DIR}/ip-masq-agent.dashboard.json`;

/** Labels every scraped series gets from Prometheus, and the histogram buckets' own. */
const SCRAPE_LABELS = ['instance', 'job', 'le'];

/** Series names and label names a query may use. */
interface Vocabulary {
  readonly series: ReadonlySet<string>;
  readonly labels: ReadonlySet<string>;
  /** Metric families the agent exports today (histograms by their base name). */
  readonly families: readonly string[];
}

/** What the agent's /metrics holds after a sync, read from its own `# TYPE` and sample lines. */
async function agentVocabulary(): Promise<Vocabulary> {
  const count = { family: 'ipv4', action: 'masquerade', list: 'default', packets: 40, bytes: 2400 } as const;
  const decisionCounts = createDecisionCounts({ read: async () => [count], now: () => T0 });
  const m = createMetrics({ defaultMetrics: false, decisionCounts, conntrackPressure: () => NO_PRESSURE });
  m.onSync({ reason: 'start', at: T0, configValid: true, families: [{ family: 'ipv4', result: 'applied', durationMs: 2, rules: 4 }] });
  m.countDeletedFlows('ipv4', 3);
  m.update(makeStatus({ ipv4: { ...okFamily(T0), shadowingRules: [{ rule: '-A POSTROUTING -j cali-POSTROUTING', owner: 'calico' }] } }));
  const text = await m.registry.metrics();
  const series = new Set<string>();
  const labels = new Set(SCRAPE_LABELS);
  const families: string[] = [];
  for (const [, name = '', type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    families.push(name);
    series.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) series.add(name + suffix);
  }
  for (const [, set = ''] of text.matchAll(/^\w+\{(.*)\} \S+$/gm)) for (const [, label = ''] of set.matchAll(/(\w+)="(?:[^"\\]|\\.)*"/g)) labels.add(label);
  return { series, labels, families };
}

/** The agent's metric names and the label names in a PromQL expression that the vocabulary lacks. */
function unknownNames(expr: string, known: Vocabulary): string[] {
  const metrics = [...expr.matchAll(/\bip_masq_agent_\w+/g)].map((m) => m[0]);
  const matchers = [...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...(m[1] ?? '').matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1] ?? ''));
  const grouping = [...expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)].flatMap((m) =>
    (m[1] ?? '')
      .split(',')
      .map((l) => l.trim())
      .filter((l) => l !== ''),
  );
  return [...metrics.filter((n) => !known.series.has(n)), ...[...matchers, ...grouping].filter((l) => !known.labels.has(l))];
}

interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string | undefined;
  readonly severity: Yaml;
  readonly annotations: Yaml;
}

function loadAlerts(text = readRepoFile(RULES)): AlertRule[] {
  const groups = asArray(at(parseYaml(text), 'groups'), 'groups');
  assert.deepEqual(
    groups.map((g) => at(g, 'name')),
    ['ip-masq-agent'],
  );
  return asArray(at(groups[0], 'rules'), 'rules').map((r) => ({
    alert: asString(at(r, 'alert'), 'alert'),
    expr: asString(at(r, 'expr'), 'expr'),
    for: at(r, 'for') === undefined ? undefined : asString(at(r, 'for'), 'for'),
    severity: at(r, 'labels', 'severity'),
    annotations: at(r, 'annotations'),
  }));
}

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { readonly uid: string };
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  readonly targets?: readonly { readonly expr: string; readonly refId: string; readonly datasource?: { readonly uid: string } }[];
}
interface Dashboard {
  readonly schemaVersion: number;
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly { readonly name: string; readonly type: string; readonly query: unknown }[] };
}
const loadDashboard = (): Dashboard => JSON.parse(readRepoFile(DASHBOARD)) as Dashboard;
/** Every query of the dashboard, named by its panel, the node picker's included. */
function dashboardQueries(d: Dashboard): { where: string; expr: string }[] {
  const panels = d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr })));
  const variables = d.templating.list.flatMap((v) => (v.type === 'query' ? [{ where: `variable ${v.name}`, expr: String(at(v.query, 'query')) }] : []));
  return [...panels, ...variables];
}

describe('deploy/monitoring: alert rules', () => {
  const alerts = loadAlerts();

  it('every alert is named IpMasqAgent..., has a severity, a summary, a description and a runbook in the README', () => {
    const readme = readRepoFile('README.md');
    const headings = new Set([...readme.matchAll(/^#{2,4} (.+)$/gm)].map((m) => (m[1] ?? '').trim()));
    assert.ok(alerts.length >= 5, `${alerts.length} alerts`);
    for (const a of alerts) {
      assert.match(a.alert, /^IpMasqAgent[A-Z]\w+$/);
      assert.ok(['critical', 'warning', 'info'].includes(String(a.severity)), `${a.alert}: severity ${String(a.severity)}`);
      assert.ok(a.for !== undefined, `${a.alert} has a for: duration`);
      for (const key of ['summary', 'description']) assert.match(String(at(a.annotations, key)), /\{\{ \$labels\.instance \}\}/, `${a.alert} ${key}`);
      assert.equal(at(a.annotations, 'runbook_url'), `README.md#${a.alert.toLowerCase()}`, a.alert);
      assert.ok(headings.has(a.alert), `README.md has no "### ${a.alert}" heading for the runbook_url anchor`);
    }
  });

  it('the alerts cover sync failures, stale rules, an invalid config, drift, shadowing and conntrack', () => {
    const uses = (metric: string): boolean => alerts.some((a) => a.expr.includes(metric));
    for (const metric of [
      'ip_masq_agent_sync_total',
      'ip_masq_agent_last_sync_success_timestamp_seconds',
      'ip_masq_agent_config_valid',
      'ip_masq_agent_drift_repairs_total',
      'ip_masq_agent_shadowing_rules',
      'ip_masq_agent_conntrack_entries_limit',
    ]) {
      assert.ok(uses(metric), `no alert on ${metric}`);
    }
  });

  it('every alert has a promtool test where it fires and one where it stays quiet', () => {
    const tests = asArray(at(parseYaml(readRepoFile(RULES_TEST)), 'tests'), 'tests').flatMap((t) => asArray(at(t, 'alert_rule_test') ?? [], 'alert_rule_test'));
    assert.deepEqual(at(parseYaml(readRepoFile(RULES_TEST)), 'rule_files'), ['ip-masq-agent.rules.yaml']);
    for (const a of alerts) {
      const mine = tests.filter((t) => at(t, 'alertname') === a.alert).map((t) => asArray(at(t, 'exp_alerts'), 'exp_alerts').length);
      assert.ok(
        mine.some((n) => n > 0),
        `${a.alert} never fires in ${RULES_TEST}`,
      );
      assert.ok(
        mine.some((n) => n === 0),
        `${a.alert} is never checked quiet in ${RULES_TEST}`,
      );
    }
  });
});

describe('deploy/monitoring: every metric and label named is one the agent exports', () => {
  let known: Vocabulary;
  before(async () => {
    known = await agentVocabulary();
  });

  it('the check finds a misspelt metric or label (so the checks below can fail)', () => {
    assert.deepEqual(unknownNames('sum by (family, famly) (rate(ip_masq_agent_sync_totl{result="error",reslt="x"}[5m]))', known), ['ip_masq_agent_sync_totl', 'reslt', 'famly']);
    assert.deepEqual(unknownNames('histogram_quantile(0.9, sum by (le) (rate(ip_masq_agent_sync_duration_seconds_bucket[5m])))', known), []);
    assert.deepEqual(unknownNames('ip_masq_agent_rules_bucket', known), ['ip_masq_agent_rules_bucket'], 'only histograms have buckets');
  });

  it('in the alert rules', () => {
    for (const a of loadAlerts()) assert.deepEqual(unknownNames(a.expr, known), [], a.alert);
  });

  it("in the dashboard's queries", () => {
    for (const { where, expr } of dashboardQueries(loadDashboard())) assert.deepEqual(unknownNames(expr, known), [], `${where}: ${expr}`);
  });

  it('the dashboard shows every metric the agent exports', () => {
    const all = dashboardQueries(loadDashboard())
      .map((q) => q.expr)
      .join('\n');
    const names = new Set([...all.matchAll(/\bip_masq_agent_\w+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
    for (const family of known.families) assert.ok(names.has(family), `no panel shows ${family}`);
  });
});

describe('deploy/monitoring: the Grafana dashboard', () => {
  const d = loadDashboard();

  it('uses a ${datasource} variable and a node (instance) variable that every query filters on', () => {
    assert.ok(d.schemaVersion >= 36 && d.schemaVersion <= 41, `schemaVersion ${d.schemaVersion}`);
    assert.equal(d.uid, 'ip-masq-agent');
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.get('datasource')?.type, 'datasource');
    assert.equal(vars.get('datasource')?.query, 'prometheus');
    assert.equal(vars.get('instance')?.type, 'query');
    const panels = d.panels.filter((p) => p.type !== 'row');
    assert.ok(panels.length >= 11, `${panels.length} panels`);
    for (const p of panels) {
      assert.equal(p.datasource?.uid, '${datasource}', p.title);
      assert.ok((p.targets ?? []).length > 0, `${p.title} has no query`);
      for (const t of p.targets ?? []) {
        assert.equal(t.datasource?.uid, '${datasource}', `${p.title} ${t.refId}`);
        assert.match(t.expr, /\{[^}]*instance=~"\$instance"/, `${p.title} ${t.refId} ignores the node picker`);
      }
    }
  });

  it('has unique panel ids and no two panels overlapping', () => {
    assert.equal(new Set(d.panels.map((p) => p.id)).size, d.panels.length);
    const overlap = (a: Panel['gridPos'], b: Panel['gridPos']): boolean => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
    d.panels.forEach((a, i) => {
      assert.ok(a.gridPos.x + a.gridPos.w <= 24, `${a.title} is wider than the grid`);
      for (const b of d.panels.slice(i + 1)) assert.ok(!overlap(a.gridPos, b.gridPos), `"${a.title}" overlaps "${b.title}"`);
    });
  });
});

describe('deploy/monitoring: the PrometheusRule', () => {
  /** scripts/monitoring.mjs, which writes the PrometheusRule (plain JavaScript, loaded at run time). */
  const generator = async (): Promise<{ renderPrometheusRule(rulesText: string): string }> =>
    (await import(pathToFileURL(join(repoRoot(), 'scripts/monitoring.mjs')).href)) as { renderPrometheusRule(rulesText: string): string };

  it('is what `node scripts/monitoring.mjs` writes from the rules file (run it after editing the rules)', async () => {
    const { renderPrometheusRule } = await generator();
    assert.equal(readRepoFile(PROMETHEUS_RULE), renderPrometheusRule(readRepoFile(RULES)), `${PROMETHEUS_RULE} is stale: run node scripts/monitoring.mjs`);
    const edited = readRepoFile(RULES).replace('IpMasqAgentConfigInvalid', 'IpMasqAgentConfigRejected');
    assert.match(renderPrometheusRule(edited), /alert: IpMasqAgentConfigRejected/);
  });

  it("holds the rules file's groups, as a PrometheusRule in the agent's namespace", () => {
    const rule = parseYaml(readRepoFile(PROMETHEUS_RULE));
    assert.equal(at(rule, 'apiVersion'), 'monitoring.coreos.com/v1');
    assert.equal(at(rule, 'kind'), 'PrometheusRule');
    assert.equal(at(rule, 'metadata', 'name'), 'ip-masq-agent');
    assert.equal(at(rule, 'metadata', 'namespace'), 'kube-system');
    assert.deepEqual(at(rule, 'spec', 'groups'), at(parseYaml(readRepoFile(RULES)), 'groups'));
  });
});

/** Runs promtool in `cwd`; status and everything it printed. */
function promtool(args: string[], cwd = repoRoot(), input?: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 60_000, ...(input === undefined ? {} : { input }) });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}
const skip = spawnSync('promtool', ['--version'], { stdio: 'ignore', timeout: 20_000 }).status === 0 ? false : 'promtool is not installed (scripts/setup.sh installs it)';

describe('deploy/monitoring: promtool', { skip }, () => {
  let scratch = '';
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'ip-masq-promtool-'));
  });
  after(() => {
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
  });

  it('`promtool check rules` accepts the rules file', () => {
    const r = promtool(['check', 'rules', RULES]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: \d+ rules found/);
  });

  it('`promtool test rules` passes the unit tests of every alert', () => {
    const r = promtool(['test', 'rules', RULES_TEST]);
    assert.equal(r.status, 0, r.output);
  });

  it('the unit tests fail when an alert loses its `for:` (its quiet cases are real), naming the alert', () => {
    writeFileSync(join(scratch, 'ip-masq-agent.rules.test.yaml'), readRepoFile(RULES_TEST));
    const blocks = readRepoFile(RULES).split(/(?=^ {6}- alert: )/m);
    for (const [i, block] of blocks.entries()) {
      const alert = /alert: (\w+)/.exec(block)?.[1];
      if (alert === undefined) continue;
      const mutated = blocks.map((b, j) => (j === i ? b.replace(/for: \S+/, 'for: 0m') : b)).join('');
      writeFileSync(join(scratch, 'ip-masq-agent.rules.yaml'), mutated);
      const r = promtool(['test', 'rules', 'ip-masq-agent.rules.test.yaml'], scratch);
      assert.notEqual(r.status, 0, `${alert} without for: still passes its tests`);
      assert.match(r.output, new RegExp(`alertname: ${alert}\\b`));
    }
  });

  it("parses every query of the dashboard (as recording rules, Grafana's variables filled in)", () => {
    const rules = dashboardQueries(loadDashboard()).map((q, i) => ({
      record: `dashboard_query_${i}`,
      expr: q.expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*'),
    }));
    // The node picker's label_values() is Grafana's, not PromQL: its metric is checked above.
    const promql = rules.filter((r) => !r.expr.startsWith('label_values('));
    writeFileSync(join(scratch, 'dashboard.rules.yaml'), stringifyYaml({ groups: [{ name: 'dashboard', rules: promql }] }));
    const r = promtool(['check', 'rules', join(scratch, 'dashboard.rules.yaml')]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${promql.length} rules found`));
  });

  it("`promtool check metrics` finds nothing in the agent's /metrics but prom-client's _total gauges", async () => {
    const m = createMetrics();
    m.onSync({ reason: 'start', at: T0, configValid: true, families: [{ family: 'ipv4', result: 'applied', durationMs: 2, rules: 4 }] });
    m.update(makeStatus({ ipv4: okFamily(T0) }));
    const r = promtool(['check', 'metrics'], repoRoot(), await m.registry.metrics());
    // Gauges under the names prom-client gave them (docs/deploy.md): renaming them would break
    // dashboards built on those names, for a lint.
    const kept = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
    const findings = r.output.split('\n').filter((l) => l.trim() !== '' && !kept.some((k) => l.startsWith(`${k} non-counter metrics should not have "_total" suffix`)));
    assert.deepEqual(findings, []);
    const bad = promtool(['check', 'metrics'], repoRoot(), '# HELP x_seconds_total x\n# TYPE x_seconds_total gauge\nx_seconds_total 1\n');
    assert.match(bad.output, /x_seconds_total non-counter metrics should not have "_total" suffix/, 'the lint runs');
  });
});
