// Checks a Grafana dashboard JSON file: against the JSON Schema generated
// from @grafana/schema's Dashboard type (grafana-dashboard.schema.json beside
// this file, see scripts/check-monitoring --regenerate-schema), then plain
// rules the schema cannot say: a uid, unique panel ids, every panel on the
// templated Prometheus data source, every target with a PromQL expr, panels
// inside the 24-column grid, and each metric the farm serves shown somewhere.
//   node check-dashboard.mjs DASHBOARD.json
// Prints one line per problem; exit 1 when there is any.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';

const here = dirname(fileURLToPath(import.meta.url));
const file = process.argv[2];
if (!file) {
  console.error('usage: node check-dashboard.mjs DASHBOARD.json');
  process.exit(2);
}
const problems = [];
let dash;
try {
  dash = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  console.log(`${file}: could not read the dashboard: ${e.message}`);
  process.exit(1);
}

const schema = JSON.parse(readFileSync(join(here, 'grafana-dashboard.schema.json'), 'utf8'));
const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(schema);
if (!validate(dash))
  for (const e of validate.errors) problems.push(`schema: ${e.instancePath || '/'} ${e.message}`);

if (typeof dash.uid !== 'string' || dash.uid === '') problems.push('the dashboard has no uid');
if (typeof dash.title !== 'string' || dash.title === '') problems.push('the dashboard has no title');

const vars = dash.templating?.list ?? [];
const dsVar = vars.find((v) => v.type === 'datasource');
if (!dsVar || dsVar.query !== 'prometheus')
  problems.push('no templated Prometheus data source (a variable of type datasource, query "prometheus")');
const dsRef = dsVar ? `\${${dsVar.name}}` : '${datasource}';
const onTemplatedDs = (ds) => ds && ds.type === 'prometheus' && ds.uid === dsRef;

// Rows may hold their panels (collapsed rows): check those too.
const all = [];
for (const p of dash.panels ?? []) {
  all.push(p);
  for (const q of p.panels ?? []) all.push(q);
}
const ids = new Map();
const exprs = [];
for (const p of all) {
  const name = `panel ${p.id} "${p.title ?? ''}"`;
  if (!Number.isInteger(p.id)) problems.push(`${name}: id is not an integer`);
  else if (ids.has(p.id)) problems.push(`${name}: id ${p.id} is also panel "${ids.get(p.id)}"`);
  else ids.set(p.id, p.title);
  const g = p.gridPos;
  if (!g || g.x < 0 || g.w < 1 || g.x + g.w > 24 || g.h < 1) problems.push(`${name}: gridPos outside the 24 columns`);
  if (p.type === 'row') continue;
  if (!onTemplatedDs(p.datasource))
    problems.push(`${name}: datasource is not {"type": "prometheus", "uid": "${dsRef}"}`);
  if (!Array.isArray(p.targets) || p.targets.length === 0) problems.push(`${name}: no targets`);
  for (const t of p.targets ?? []) {
    if (typeof t.expr !== 'string' || t.expr.trim() === '') problems.push(`${name}: target ${t.refId} has no expr`);
    else exprs.push(t.expr);
    if (t.datasource !== undefined && !onTemplatedDs(t.datasource))
      problems.push(`${name}: target ${t.refId}'s datasource is not the templated Prometheus one`);
  }
}
for (const v of vars)
  if (v.type === 'query' && !onTemplatedDs(v.datasource))
    problems.push(`variable ${v.name}: datasource is not the templated Prometheus one`);

const wanted = ['backtest_duration_seconds_bucket', 'sf_job_queue_wait_seconds_bucket', 'sf_jobs_completed_total',
  'sf_queue_depth', 'sf_jobs_running', 'sf_workers_live', 'sf_job_retries_total', 'sf_jobs{status="dead"}',
  'logic_executions_total', 'http_request_duration_seconds_bucket', 'sf_worker_threads'];
for (const m of wanted) if (!exprs.some((e) => e.includes(m))) problems.push(`no panel shows ${m}`);
if (!all.some((p) => p.type === 'heatmap')) problems.push('no heatmap panel');
for (const q of ['0.5', '0.95', '0.99'])
  for (const m of ['backtest_duration_seconds_bucket', 'sf_job_queue_wait_seconds_bucket'])
    if (!exprs.some((e) => e.includes(`histogram_quantile(${q},`) && e.includes(m)))
      problems.push(`no histogram_quantile(${q}, ...) of ${m}`);

for (const p of problems) console.log(`${file}: ${p}`);
console.log(`${file}: ${all.length} panels, ${exprs.length} queries, ${problems.length} problem(s)`);
process.exit(problems.length ? 1 : 0);
