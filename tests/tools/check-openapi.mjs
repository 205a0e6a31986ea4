// Checks api/openapi.json against sf-api.
//   node check-openapi.mjs                 # the document against the route table only
//   SF_API_URL=... SF_API_KEY=... SF_API_KEY2=... [SF_METRICS_TOKEN=...] node check-openapi.mjs
// 1. Every route of api/ops.c's table (api_routes) is a path and method of
//    the document, and every path and method of the document is a route:
//    a route added without documentation fails here, by name.
// 2. With SF_API_URL: real requests to a running sf-api, for every route at
//    least one answer that succeeds and one that fails (a route whose
//    failures a client cannot cause is listed in NO_ERROR_CASE), each
//    checked against the document: the status is one the operation
//    documents, the content type is the documented one, and a JSON body
//    validates against the documented schema (ajv, JSON Schema 2020-12, the
//    dialect of OpenAPI 3.1). SF_API_KEY is a user with the data set
//    SF_SYMBOL/SF_TIMEFRAME (default BTC-USD 1d) and a worker to run jobs;
//    SF_API_KEY2 another user.
// Prints one line per check; exit 1 when any failed.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const doc = JSON.parse(readFileSync(join(root, 'api', 'openapi.json'), 'utf8'));
const opsSource = readFileSync(join(root, 'api', 'ops.c'), 'utf8');
let failed = 0;
const ok = (what) => console.log(`  ok: ${what}`);
const fail = (what) => {
  failed++;
  console.log(`  FAILED: ${what}`);
};

// ---- 1. the route table and the document ---------------------------------------------
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
function tableRoutes() {
  const table = opsSource.match(/api_routes\[\]\s*=\s*\{([\s\S]*?)\n\};/);
  if (!table) throw new Error('api/ops.c: no api_routes[] table found');
  const routes = [];
  for (const m of table[1].matchAll(/\{\s*"([A-Z]+)",\s*"([^"]+)",\s*\w+\s*\}/g)) routes.push(`${m[1]} ${m[2]}`);
  return routes;
}
function docRoutes() {
  const routes = [];
  for (const [path, item] of Object.entries(doc.paths))
    for (const m of METHODS) if (item[m]) routes.push(`${m.toUpperCase()} ${path}`);
  return routes;
}
const table = tableRoutes();
const documented = docRoutes();
console.log(`check-openapi: ${table.length} routes in api/ops.c, ${documented.length} in api/openapi.json`);
for (const r of table)
  if (documented.includes(r)) ok(`${r} documented`);
  else fail(`route ${r} is in api/ops.c but not in api/openapi.json: document it (paths, parameters, responses)`);
for (const r of documented)
  if (!table.includes(r)) fail(`${r} is in api/openapi.json but not a route of api/ops.c`);
if (doc.openapi !== '3.1.0') fail(`openapi is ${doc.openapi}, expected 3.1.0`);
if (!doc.components?.securitySchemes?.apiKey) fail('components.securitySchemes.apiKey is missing');

// ---- schemas --------------------------------------------------------------------------
const ajv = new Ajv2020({ allErrors: true, strict: false });
ajv.addFormat('uuid', /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/);
ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
const rewrite = (s) =>
  JSON.parse(JSON.stringify(s).replaceAll('"#/components/schemas/', '"sf#/$defs/'));
ajv.addSchema({ $id: 'sf', $defs: rewrite(doc.components.schemas) });
const deref = (o) => (o && o.$ref ? deref(o.$ref.split('/').slice(1).reduce((a, k) => a[k], doc)) : o);
const compiled = new Map();
function validatorFor(schema) {
  const key = JSON.stringify(schema);
  if (!compiled.has(key)) compiled.set(key, ajv.compile(rewrite(schema)));
  return compiled.get(key);
}

// ---- 2. live answers ------------------------------------------------------------------
const base = process.env.SF_API_URL;
if (!base) {
  console.log(`check-openapi: ${failed} failed (route table only: SF_API_URL not set)`);
  process.exit(failed ? 1 : 0);
}
const key1 = process.env.SF_API_KEY, key2 = process.env.SF_API_KEY2;
const symbol = process.env.SF_SYMBOL || 'BTC-USD', timeframe = process.env.SF_TIMEFRAME || '1d';
const LOGIC = {
  name: 'sma-cross',
  indicators: { fast: { type: 'sma', source: 'close', period: 2 }, slow: { type: 'sma', source: 'close', period: 3 } },
  entry: { crosses_above: ['fast', 'slow'] },
  exit: { crosses_below: ['fast', 'slow'] },
};
const GRID = { 'indicators.fast.period': [2, 3] };
const NIL = '00000000-0000-4000-8000-000000000000';
// Routes whose failures no client request can cause (they need no key and take no input).
const NO_ERROR_CASE = new Set(['GET /health', 'GET /ready', 'GET /', 'GET /openapi.json']);
const seen = new Map(); // route -> {ok, error}

async function call(method, path, { key = key1, body, headers = {} } = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const r = await fetch(base + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, type: r.headers.get('content-type') || '', text, json, headers: r.headers };
}

// Check one answer of route (its table form, "GET /v1/jobs/{id}") against the document.
function check(route, r, label) {
  const [m, p] = route.split(' ');
  const opn = doc.paths[p]?.[m.toLowerCase()];
  const what = `${route} ${label}: ${r.status}`;
  const s = seen.get(route) || { ok: 0, error: 0 };
  s[r.status < 400 ? 'ok' : 'error']++;
  seen.set(route, s);
  if (!opn) return fail(`${what}: not in the document`);
  const resp = deref(opn.responses[String(r.status)]);
  if (!resp) return fail(`${what}: status not documented (documented: ${Object.keys(opn.responses).join(', ')}); body ${r.text.slice(0, 200)}`);
  const [ctype, media] = Object.entries(resp.content || {})[0] || [];
  if (ctype && !r.type.startsWith(ctype)) return fail(`${what}: content type ${r.type}, documented ${ctype}`);
  if (ctype === 'application/json') {
    if (r.json === undefined) return fail(`${what}: body is not JSON: ${r.text.slice(0, 200)}`);
    const v = validatorFor(media.schema);
    if (!v(r.json)) return fail(`${what}: body does not match the document: ${ajv.errorsText(v.errors)}; body ${r.text.slice(0, 300)}`);
  }
  for (const [name, hdr] of Object.entries(resp.headers || {}))
    if (deref(hdr).required && !r.headers.get(name)) return fail(`${what}: header ${name} missing`);
  ok(what);
}
async function expect(route, label, status, method, path, opts) {
  const r = await call(method, path, opts);
  if (status !== undefined && !(Array.isArray(status) ? status : [status]).includes(r.status))
    fail(`${route} ${label}: status ${r.status}, expected ${status}: ${r.text.slice(0, 300)}`);
  check(route, r, label);
  return r;
}
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
async function waitJob(id, done, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(200)) {
    const r = await call('GET', `/v1/jobs/${id}`);
    if (r.json && done.includes(r.json.status)) return r.json.status;
  }
  return 'timeout';
}
async function waitBatch(id, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(200)) {
    const r = await call('GET', `/v1/batches/${id}`);
    if (r.json?.status === 'finished') return true;
  }
  return false;
}

const submit = { logic: LOGIC, symbol, timeframe };
async function live() {
  await expect('GET /health', 'up', 200, 'GET', '/health', { key: null });
  await expect('GET /ready', 'ready', 200, 'GET', '/ready', { key: null });
  await expect('GET /', 'the page', 200, 'GET', '/', { key: null });
  await expect('GET /openapi.json', 'the document', 200, 'GET', '/openapi.json', { key: null });
  const mt = process.env.SF_METRICS_TOKEN;
  await expect('GET /metrics', 'with the token', 200, 'GET', '/metrics', { key: mt || null });
  if (mt) await expect('GET /metrics', 'without the token', 401, 'GET', '/metrics', { key: null });
  else await expect('GET /metrics', 'a wrong token', [200, 401], 'GET', '/metrics', { key: 'wrong' });

  await expect('GET /v1/datasets', 'list', 200, 'GET', '/v1/datasets');
  await expect('GET /v1/datasets', 'no key', 401, 'GET', '/v1/datasets', { key: null });
  await expect('GET /v1/datasets', 'a wrong key', 401, 'GET', '/v1/datasets', { key: 'sf_wrong' });

  const job = await expect('POST /v1/backtests', 'submit', 202, 'POST', '/v1/backtests', { body: submit, headers: { 'Idempotency-Key': 'oa-1' } });
  await expect('POST /v1/backtests', 'replay', 200, 'POST', '/v1/backtests', { body: submit, headers: { 'Idempotency-Key': 'oa-1' } });
  await expect('POST /v1/backtests', 'bad logic', 400, 'POST', '/v1/backtests', { body: { ...submit, logic: { name: 'x' } } });
  await expect('POST /v1/backtests', 'no data set', 404, 'POST', '/v1/backtests', { body: { ...submit, symbol: 'NOPE' } });
  await expect('POST /v1/backtests', 'not JSON', 400, 'POST', '/v1/backtests', { body: '[' });
  const id = job.json?.id;
  const st = await waitJob(id, ['succeeded', 'failed', 'dead'], 60000);
  if (st !== 'succeeded') fail(`backtest ${id} ended ${st}, not succeeded (is a worker running?)`);

  await expect('GET /v1/jobs/{id}', 'own', 200, 'GET', `/v1/jobs/${id}`);
  await expect('GET /v1/jobs/{id}', "another user's", 404, 'GET', `/v1/jobs/${id}`, { key: key2 });
  await expect('GET /v1/jobs/{id}', 'not a uuid', 404, 'GET', '/v1/jobs/nope');
  await expect('GET /v1/jobs/{id}/result', 'succeeded', 200, 'GET', `/v1/jobs/${id}/result`);
  await expect('GET /v1/jobs/{id}/result', 'missing', 404, 'GET', `/v1/jobs/${NIL}/result`);
  await expect('POST /v1/jobs/{id}/cancel', 'finished', 409, 'POST', `/v1/jobs/${id}/cancel`);
  // The worker is frozen while the job it could take is submitted and
  // cancelled: the cancel meets a waiting job on any machine, never a race.
  const worker = Number(process.env.SF_WORKER_PID || 0);
  if (!(worker > 1)) fail('SF_WORKER_PID is not set: the cancel of a waiting job needs the worker frozen');
  else {
    process.kill(worker, 'SIGSTOP');
    try {
      const late = await call('POST', '/v1/backtests', { body: { ...submit, priority: 'low' } });
      await expect('POST /v1/jobs/{id}/cancel', 'waiting', [200, 202], 'POST', `/v1/jobs/${late.json?.id}/cancel`);
    } finally {
      process.kill(worker, 'SIGCONT');
    }
  }
  await expect('POST /v1/jobs/{id}/cancel', 'missing', 404, 'POST', `/v1/jobs/${NIL}/cancel`);
  await expect('POST /v1/jobs/{id}/rerun', 'rerun', 202, 'POST', `/v1/jobs/${id}/rerun`, { body: {} });
  await expect('POST /v1/jobs/{id}/rerun', 'missing', 404, 'POST', `/v1/jobs/${NIL}/rerun`, { body: {} });
  await expect('POST /v1/jobs/{id}/rerun', 'unknown field', 400, 'POST', `/v1/jobs/${id}/rerun`, { body: { nope: 1 } });

  const sweep = await expect('POST /v1/sweeps', 'submit', 202, 'POST', '/v1/sweeps', { body: { ...submit, grid: GRID } });
  await expect('POST /v1/sweeps', 'bad grid', 400, 'POST', '/v1/sweeps', { body: { ...submit, grid: { 'indicators.fast.period': [] } } });
  const bid = sweep.json?.id;
  if (!(await waitBatch(bid, 60000))) fail(`sweep ${bid} did not finish within 60 s`);
  await expect('GET /v1/batches/{id}', 'own', 200, 'GET', `/v1/batches/${bid}?top=5`);
  await expect('GET /v1/batches/{id}', 'bad metric', 400, 'GET', `/v1/batches/${bid}?by=nope`);
  await expect('GET /v1/batches/{id}', "another user's", 404, 'GET', `/v1/batches/${bid}`, { key: key2 });
  await expect('POST /v1/batches/{id}/cancel', 'finished', [200, 202, 409], 'POST', `/v1/batches/${bid}/cancel`);
  await expect('POST /v1/batches/{id}/cancel', 'missing', 404, 'POST', `/v1/batches/${NIL}/cancel`);
  await expect('POST /v1/batches/{id}/rerun', 'dry run', 200, 'POST', `/v1/batches/${bid}/rerun`, { body: { status: 'succeeded', dry_run: true } });
  await expect('POST /v1/batches/{id}/rerun', 'nothing to rerun', 409, 'POST', `/v1/batches/${bid}/rerun`, { body: {} });
  await expect('POST /v1/batches/{id}/rerun', 'missing', 404, 'POST', `/v1/batches/${NIL}/rerun`, { body: {} });

  await expect('GET /v1/jobs', 'page', 200, 'GET', '/v1/jobs?limit=1');
  await expect('GET /v1/jobs', 'members', 200, 'GET', `/v1/jobs?batch=${bid}&status=succeeded`);
  await expect('GET /v1/jobs', 'limit too big', 400, 'GET', '/v1/jobs?limit=501');
  await expect('GET /v1/jobs', 'bad status', 400, 'GET', '/v1/jobs?status=nope');
  await expect('GET /v1/batches', 'page', 200, 'GET', '/v1/batches?limit=5');
  await expect('GET /v1/batches', 'bad cursor', 400, 'GET', '/v1/batches?cursor=nope');
  await expect('POST /v1/reruns', 'dry run', 200, 'POST', '/v1/reruns', { body: { status: 'succeeded', dry_run: true } });
  await expect('POST /v1/reruns', 'rerun', 202, 'POST', '/v1/reruns', { body: { status: 'cancelled' } });
  await expect('POST /v1/reruns', 'no filter', 400, 'POST', '/v1/reruns', { body: {} });

  await stored();
  await expect('GET /v1/me', 'who', 200, 'GET', '/v1/me');
  await expect('GET /v1/me', 'no key', 401, 'GET', '/v1/me', { key: null });

  const status = await expect('GET /v1/status', 'figures', 200, 'GET', '/v1/status');
  const mine = status.json?.mine;
  if (!mine?.batches?.some((b) => b.id === bid)) fail(`GET /v1/status: mine.batches lacks the sweep ${bid}`);
  const other = await call('GET', '/v1/status', { key: key2 });
  if (other.json?.mine?.batches?.length !== 0) fail("GET /v1/status: another user sees this user's batches");
  await expect('GET /v1/status', 'no key', 401, 'GET', '/v1/status', { key: null });
}

// Stored logics and schedules.
async function stored() {
  const L = '/v1/logics', S = '/v1/schedules';
  const made = await expect(`POST ${L}`, 'store', 201, 'POST', L, { body: { name: 'oa', logic: LOGIC } });
  await expect(`POST ${L}`, 'invalid logic', 400, 'POST', L, { body: { logic: { name: 'x' } } });
  const lid = made.json?.id;
  await expect(`GET ${L}`, 'page', 200, 'GET', `${L}?limit=5`);
  await expect(`GET ${L}`, 'bad cursor', 400, 'GET', `${L}?cursor=nope`);
  await expect(`PUT ${L}/{id}`, 'new version', 200, 'PUT', `${L}/${lid}`, { body: { logic: { ...LOGIC, name: 'oa2' } } });
  await expect(`PUT ${L}/{id}`, 'missing', 404, 'PUT', `${L}/${NIL}`, { body: { logic: LOGIC } });
  await expect(`GET ${L}/{id}`, 'current', 200, 'GET', `${L}/${lid}`);
  await expect(`GET ${L}/{id}`, 'version 1', 200, 'GET', `${L}/${lid}?version=1`);
  await expect(`GET ${L}/{id}`, "another user's", 404, 'GET', `${L}/${lid}`, { key: key2 });
  const gone = await call('POST', L, { body: { logic: LOGIC } });
  await expect(`DELETE ${L}/{id}`, 'delete', 200, 'DELETE', `${L}/${gone.json?.id}`);
  await expect(`DELETE ${L}/{id}`, 'deleted already', [404, 410], 'DELETE', `${L}/${gone.json?.id}`);
  await expect(`GET ${L}/{id}`, 'deleted', 410, 'GET', `${L}/${gone.json?.id}`);

  const sched = { name: 'oa', cron: '0 0 1 1 *', logic_id: lid, symbol, timeframe };
  const sm = await expect(`POST ${S}`, 'create', 201, 'POST', S, { body: sched });
  await expect(`POST ${S}`, 'bad cron', 400, 'POST', S, { body: { ...sched, cron: 'not cron' } });
  const sid = sm.json?.id;
  await expect(`GET ${S}`, 'page', 200, 'GET', `${S}?limit=5`);
  await expect(`GET ${S}`, 'bad cursor', 400, 'GET', `${S}?cursor=nope`);
  await expect(`GET ${S}/{id}`, 'own', 200, 'GET', `${S}/${sid}`);
  await expect(`GET ${S}/{id}`, "another user's", 404, 'GET', `${S}/${sid}`, { key: key2 });
  await expect(`GET ${S}/{id}/signals`, 'page', 200, 'GET', `${S}/${sid}/signals`);
  await expect(`GET ${S}/{id}/signals`, 'missing', 404, 'GET', `${S}/999999999/signals`);
  await expect(`DELETE ${S}/{id}`, 'delete', 200, 'DELETE', `${S}/${sid}`);
  await expect(`DELETE ${S}/{id}`, 'missing', 404, 'DELETE', `${S}/${sid}`);
}

try {
  await live();
} catch (e) {
  fail(`live checks stopped: ${e.stack || e}`);
}
for (const r of table) {
  const s = seen.get(r);
  if (!s || !s.ok) fail(`route ${r} has no successful live case in tests/tools/check-openapi.mjs: add one`);
  else if (!s.error && !NO_ERROR_CASE.has(r)) fail(`route ${r} has no failing live case in tests/tools/check-openapi.mjs: add one`);
}
console.log(`check-openapi: ${failed} failed`);
process.exit(failed ? 1 : 0);
