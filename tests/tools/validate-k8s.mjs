#!/usr/bin/env node
// Offline validation of the Kubernetes manifests (scripts/check-manifests).
//
//   node tests/tools/validate-k8s.mjs [--dockerfile FILE] DIR[+COMPONENT...]...
//
// Each DIR is a kustomization (k8s/); DIR+components/keda builds it with
// that component added, as if listed under its components:. The script walks
// it as kustomize would (resources, components, generators, patches that
// delete, images, namespace), then checks every object:
//   - against its model (kubernetes-models and the KEDA, External Secrets
//     and Prometheus Operator packages): types, required fields, enums;
//   - for keys the models do not know (a misspelt `readinesProbe:` passes a
//     schema check): every key of every object is looked up in the model's
//     TypeScript interfaces, recursively;
//   - for what this project requires (see the checks below): probes,
//     resources, images, the pod security rules, the API and autoscaler
//     numbers, the worker's memory bound and drain time, references
//     between objects.
// With --dockerfile: the bases are debian:bookworm / debian:bookworm-slim
// and every final stage runs as a numeric non-root USER, whose uid the pods
// running the image must use.
// Prints one line per problem; exit 1 when there is any, 0 otherwise.
import { readFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

const require = createRequire(import.meta.url);
const TOOLS = dirname(fileURLToPath(import.meta.url));
const CWD = process.cwd();
const rel = (p) => relative(CWD, p) || '.';

const problems = new Set();
const warnings = new Set();
const fail = (msg) => problems.add(msg);
const warn = (msg) => warnings.add(msg);

// ---------------------------------------------------------------- project rules
const APP_IMAGES = ['signal-factory', 'signal-factory-ops'];
// Pods allowed to run as root, and why (each keeps every other rule).
const ROOT_ALLOWED = {
  'logging/DaemonSet/fluent-bit': 'reads the kubelet\'s root-only container log files',
};
const API = {
  replicas: 3, port: 3000,
  requests: { memory: '256Mi', cpu: '250m' }, limits: { memory: '512Mi', cpu: '500m' },
  liveness: { path: '/health', initialDelaySeconds: 30, periodSeconds: 10 },
  readiness: { path: '/ready', initialDelaySeconds: 5, periodSeconds: 5 },
};
const HPA = {
  minReplicas: 2, maxReplicas: 10, cpu: 70, memory: 80,
  scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: 'Percent', value: 50, periodSeconds: 15 }] },
  scaleUp: {
    stabilizationWindowSeconds: 0, selectPolicy: 'Max',
    policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }, { type: 'Pods', value: 4, periodSeconds: 15 }],
  },
};
const METRICS_PORTS = { 'sf-worker': 9400, 'sf-scheduler': 9401 };
// README "Worker memory and leases": defaults and the base.
const WORKER_DEFAULTS = { SF_CACHE_MB: 128, SF_RUN_MAX_MB: 96, SF_OUTCOME_BUDGET_MB: 64, SF_COMPLETION_BATCH_MB: 8 };
const WORKER_BASE_MB = 16;
const DRAIN_DEFAULT_S = 25;
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'ClusterSecretStore',
  'CustomResourceDefinition', 'PersistentVolume', 'StorageClass', 'PriorityClass', 'ClusterTriggerAuthentication',
  'ClusterExternalSecret', 'ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration', 'IngressClass']);
const KUSTOMIZATION_KEYS = new Set(['apiVersion', 'kind', 'metadata', 'resources', 'components', 'bases',
  'configMapGenerator', 'secretGenerator', 'generatorOptions', 'images', 'patches', 'patchesStrategicMerge',
  'patchesJson6902', 'namespace', 'namePrefix', 'nameSuffix', 'labels', 'commonLabels', 'commonAnnotations',
  'replicas', 'replacements', 'configurations', 'crds', 'openapi', 'helmCharts', 'transformers', 'generators',
  'validators', 'buildMetadata', 'sortOptions', 'vars']);

// ---------------------------------------------------------------- models
const PKG = {
  'keda.sh': '@kubernetes-models/keda', 'external-secrets.io': '@kubernetes-models/external-secrets',
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
};
function modelDir(apiVersion) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const pkg = PKG[group] ?? 'kubernetes-models';
  const sub = group ? `${group}/${version}` : version;
  return { importPath: `${pkg}/${sub}`, dir: join(TOOLS, 'node_modules', pkg, group, version) };
}
async function modelFor(apiVersion, kind) {
  const { importPath } = modelDir(apiVersion);
  let mod;
  try { mod = await import(importPath); } catch { try { mod = require(importPath); } catch { return null; } }
  return mod[kind] ?? null;
}

// Keys: the models' TypeScript declarations (.d.ts), read once each. A
// type is {props: Map(name -> type)} (an object), {array: type},
// {map: type}, {file} (an interface in another file) or null (a scalar, a
// union, anything not checked).
const dtsCache = new Map();
function readDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  dtsCache.set(file, null);
  if (!existsSync(file)) return null;
  const text = readFileSync(file, 'utf8').replace(/\/\*\*[\s\S]*?\*\//g, '');
  const imports = new Map();
  for (const m of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";$/gm)) {
    for (const name of m[1].split(',').map((x) => x.trim())) imports.set(name, m[2]);
  }
  // The class lists every property, those of the interfaces it extends too.
  const head = text.match(/^export declare class \w+ extends Model<\w+>(?: implements \w+)? \{$/m) ??
    text.match(/^export interface \w+(?: extends [\w, ]+)? \{$/m);
  if (!head) return null;
  const body = text.slice(head.index + head[0].length);
  const ctx = { file, imports };
  const type = parseObjectBody(body, 0, ctx).type;
  dtsCache.set(file, type);
  return type;
}
function skipWs(t, i) { while (i < t.length && /\s/.test(t[i])) i++; return i; }
function parseObjectBody(t, i, ctx) { // after '{' -> {type, end after '}'}
  const props = new Map();
  for (;;) {
    i = skipWs(t, i);
    if (i >= t.length || t[i] === '}') return { type: { props }, end: i + 1 };
    const m = t.slice(i).match(/^"([^"]+)"\??:\s*/) ?? t.slice(i).match(/^\[key: string\]:\s*/);
    if (!m) { // constructor, static members: skip to the end of the line
      const nl = t.indexOf('\n', i);
      if (nl < 0) return { type: { props }, end: t.length };
      i = nl + 1;
      continue;
    }
    const r = parseType(t, i + m[0].length, ctx);
    if (m[1] !== undefined) props.set(m[1], r.type);
    else props.set('[key]', r.type);
    i = skipWs(t, r.end);
    if (t[i] === ';') i++;
  }
}
function parseType(t, i, ctx) { // -> {type, end}
  // The text up to ';' (or a closing '>' or '}') at depth 0.
  let depth = 0, j = i;
  for (; j < t.length; j++) {
    const c = t[j];
    if (c === '{' || c === '<' || c === '(' || c === '[') depth++;
    else if (c === '}' || c === '>' || c === ')' || c === ']') { if (depth === 0) break; depth--; }
    else if (c === ';' && depth === 0) break;
  }
  const text = t.slice(i, j).trim();
  return { type: typeOf(text, ctx), end: j };
}
function typeOf(text, ctx) {
  let m;
  if ((m = text.match(/^Array<([\s\S]+)>$/))) return { array: typeOf(m[1].trim(), ctx) };
  if (text.startsWith('{')) {
    const obj = parseObjectBody(text, 1, ctx).type;
    if (obj.props.size === 1 && obj.props.has('[key]')) return { map: obj.props.get('[key]') };
    return obj.props.has('[key]') ? null : obj;
  }
  if (/^I\w+$/.test(text) && ctx.imports.has(text)) {
    const file = resolveImport(ctx.file, ctx.imports.get(text));
    return file ? { file } : null;
  }
  return null;
}
function resolveImport(fromFile, spec) {
  if (spec.startsWith('.')) return resolve(dirname(fromFile), spec.replace(/\.js$/, '') + '.d.ts');
  for (let d = dirname(fromFile); ; d = dirname(d)) {
    const cand = join(d, 'node_modules', spec.replace(/\.js$/, '') + '.d.ts');
    if (existsSync(cand)) return cand;
    if (d === dirname(d)) return null;
  }
}
function closest(word, options) {
  let best = null, bestD = 3;
  for (const o of options) {
    const d = editDistance(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) { best = o; bestD = d; }
  }
  return best;
}
function editDistance(a, b) {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) {
    dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return dp[a.length][b.length];
}
function checkKeys(where, value, type, path) {
  if (!type || value === null || typeof value !== 'object') return;
  if (type.file) { checkKeys(where, value, readDts(type.file), path); return; }
  if (type.array) { if (Array.isArray(value)) value.forEach((x, i) => checkKeys(where, x, type.array, `${path}/${i}`)); return; }
  if (type.map) { if (!Array.isArray(value)) for (const [k, x] of Object.entries(value)) checkKeys(where, x, type.map, `${path}/${k}`); return; }
  if (!type.props || Array.isArray(value)) return;
  for (const [key, v] of Object.entries(value)) {
    if (!type.props.has(key)) {
      const hint = closest(key, type.props.keys());
      fail(`${where}: unknown key "${key}" at ${path || '/'}${hint ? ` (did you mean "${hint}"?)` : ''}`);
      continue;
    }
    checkKeys(where, v, type.props.get(key), `${path}/${key}`);
  }
}

// ---------------------------------------------------------------- kustomize walk
// A build: the objects one `kubectl kustomize DIR` would print (before
// name suffixes), with the file each came from.
function readKustomization(dir, from) {
  for (const name of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
    const f = join(dir, name);
    if (existsSync(f)) {
      const docs = parseAllDocuments(readFileSync(f, 'utf8'));
      if (docs[0]?.errors.length) { fail(`${rel(f)}: YAML error: ${docs[0].errors[0].message}`); return null; }
      return { file: f, k: docs[0]?.toJSON() ?? {} };
    }
  }
  if (!existsSync(dir)) {
    fail(`${rel(dir)}: listed in ${rel(from)} but does not exist (not written yet? it must hold a kustomization.yaml)`);
  } else {
    fail(`${rel(dir)}: listed in ${rel(from)} but holds no kustomization.yaml`);
  }
  return null;
}
function walk(dir, from, build, seen, extra = []) {
  const kz = readKustomization(dir, from);
  if (!kz) return;
  const { file, k } = kz;
  if (seen.has(file)) { fail(`${rel(file)}: included twice (a cycle or a repeated resource)`); return; }
  seen.add(file);
  for (const key of Object.keys(k)) if (!KUSTOMIZATION_KEYS.has(key)) {
    const hint = closest(key, KUSTOMIZATION_KEYS);
    fail(`${rel(file)}: unknown kustomization key "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
  }
  if (k.bases) fail(`${rel(file)}: "bases" is deprecated: list the directories under resources`);
  const start = build.objects.length;
  const components = [...(k.components ?? []), ...extra.filter((c) => !(k.components ?? []).includes(c))];
  const entries = [...(k.resources ?? []).map((r) => ['resource', r]), ...components.map((r) => ['component', r])];
  for (const [what, r] of entries) {
    if (typeof r !== 'string') { fail(`${rel(file)}: a ${what} entry is not a string`); continue; }
    if (/^[a-z]+:\/\//.test(r) || r.startsWith('github.com/')) { warn(`${rel(file)}: remote ${what} ${r} not checked`); continue; }
    const p = resolve(dir, r);
    if (existsSync(p) && statSync(p).isFile()) {
      if (what === 'component') { fail(`${rel(file)}: component ${r} is a file, not a directory`); continue; }
      loadFile(p, build);
    } else {
      walk(p, file, build, seen);
    }
  }
  for (const gen of [...(k.configMapGenerator ?? []), ...(k.secretGenerator ?? [])]) {
    const data = {};
    for (const f of gen.files ?? []) {
      const path = String(f).includes('=') ? String(f).split('=').slice(1).join('=') : String(f);
      if (!existsSync(resolve(dir, path))) fail(`${rel(file)}: generator ${gen.name}: file ${path} does not exist`);
    }
    for (const e of [...(gen.envs ?? []), ...(gen.env ? [gen.env] : [])]) {
      const p = resolve(dir, e);
      if (!existsSync(p)) { fail(`${rel(file)}: generator ${gen.name}: env file ${e} does not exist`); continue; }
      for (const line of readFileSync(p, 'utf8').split('\n')) {
        const m = line.match(/^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/);
        if (m) data[m[1]] = m[2];
      }
    }
    for (const l of gen.literals ?? []) { const i = String(l).indexOf('='); data[String(l).slice(0, i)] = String(l).slice(i + 1); }
    const kind = (k.secretGenerator ?? []).includes(gen) ? 'Secret' : 'ConfigMap';
    build.generated.push({ kind, name: gen.name, namespace: gen.namespace ?? k.namespace ?? null, data });
  }
  for (const p of [...(k.patches ?? []), ...(k.patchesStrategicMerge ?? []).map((x) => (typeof x === 'string' && !x.includes('\n') ? { path: x } : { patch: x }))]) {
    if (p.path && !existsSync(resolve(dir, p.path))) { fail(`${rel(file)}: patch file ${p.path} does not exist`); continue; }
    const text = p.patch ?? (p.path ? readFileSync(resolve(dir, p.path), 'utf8') : '');
    let doc; try { doc = parseYaml(text); } catch (e) { fail(`${rel(file)}: patch does not parse: ${e.message}`); continue; }
    if (doc?.$patch === 'delete') build.deletes.push({ kind: doc.kind, name: doc.metadata?.name, by: rel(file) });
  }
  // This kustomization's transformers act on everything loaded beneath it.
  const mine = build.objects.slice(start);
  for (const o of mine) {
    if (k.namespace && !CLUSTER_SCOPED.has(o.obj.kind)) o.obj.metadata = { ...o.obj.metadata, namespace: k.namespace };
    for (const c of containersOf(o.obj)) c.image = transformImage(c.image, k.images ?? []);
  }
  if (k.images) for (const img of k.images) {
    if (img.newTag === 'latest') fail(`${rel(file)}: images: ${img.name} is set to the tag latest`);
  }
  for (const g of build.generated) if (k.namespace && !g.namespace) g.namespace = k.namespace;
}
function transformImage(image, images) {
  if (typeof image !== 'string') return image;
  const at = image.indexOf('@');
  const base = at >= 0 ? image.slice(0, at) : image;
  const colon = base.lastIndexOf(':');
  const hasTag = colon > base.lastIndexOf('/');
  let name = hasTag ? base.slice(0, colon) : base, tag = hasTag ? base.slice(colon + 1) : null;
  let digest = at >= 0 ? image.slice(at + 1) : null;
  const rule = images.find((r) => r.name === name);
  if (!rule) return image;
  if (rule.newName) name = rule.newName;
  if (rule.newTag !== undefined) { tag = String(rule.newTag); digest = null; }
  if (rule.digest) { digest = rule.digest; tag = null; }
  return name + (tag ? `:${tag}` : '') + (digest ? `@${digest}` : '');
}
function loadFile(path, build) {
  let docs;
  try { docs = parseAllDocuments(readFileSync(path, 'utf8')); } catch (e) { fail(`${rel(path)}: ${e.message}`); return; }
  docs.forEach((doc, i) => {
    if (doc.errors.length) { fail(`${rel(path)}: YAML error: ${doc.errors[0].message}`); return; }
    const obj = doc.toJSON();
    if (obj === null || obj === undefined) return;
    if (typeof obj !== 'object' || Array.isArray(obj)) { fail(`${rel(path)}: document ${i + 1} is not an object`); return; }
    build.objects.push({ file: rel(path), obj });
  });
}

// ---------------------------------------------------------------- helpers
function podSpecOf(obj) {
  switch (obj.kind) {
    case 'Pod': return obj.spec;
    case 'Deployment': case 'StatefulSet': case 'DaemonSet': case 'ReplicaSet': case 'Job': return obj.spec?.template?.spec;
    case 'CronJob': return obj.spec?.jobTemplate?.spec?.template?.spec;
    default: return null;
  }
}
function podLabelsOf(obj) {
  if (obj.kind === 'Pod') return obj.metadata?.labels ?? {};
  if (obj.kind === 'CronJob') return obj.spec?.jobTemplate?.spec?.template?.metadata?.labels ?? {};
  return obj.spec?.template?.metadata?.labels ?? {};
}
function containersOf(obj) {
  const ps = podSpecOf(obj);
  return ps ? [...(ps.initContainers ?? []), ...(ps.containers ?? [])] : [];
}
const ns = (o) => o.metadata?.namespace ?? '';
const idOf = (o) => `${ns(o) || '-'}/${o.kind}/${o.metadata?.name ?? '?'}`;
const matches = (sel, labels) => sel && Object.keys(sel).length > 0 && Object.entries(sel).every(([k, v]) => labels?.[k] === v);
function matchesSelector(selector, labels) {
  if (!selector) return false;
  if (selector.matchLabels && !Object.entries(selector.matchLabels).every(([k, v]) => labels?.[k] === v)) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = labels && Object.prototype.hasOwnProperty.call(labels, e.key);
    if (e.operator === 'In' && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return Boolean(selector.matchLabels || selector.matchExpressions);
}
function mebibytes(q) { // Kubernetes quantity -> MiB
  const m = String(q).match(/^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/);
  if (!m) return NaN;
  const f = { Ki: 1 / 1024, Mi: 1, Gi: 1024, Ti: 1024 * 1024, k: 1e3 / 2 ** 20, M: 1e6 / 2 ** 20, G: 1e9 / 2 ** 20, T: 1e12 / 2 ** 20 };
  return Number(m[1]) * (m[2] ? f[m[2]] : 1 / 2 ** 20);
}
function cpus(q) { const m = String(q).match(/^([0-9.]+)(m)?$/); return m ? Number(m[1]) / (m[2] ? 1000 : 1) : NaN; }
function portNumber(container, port) {
  if (typeof port === 'number') return port;
  return container.ports?.find((p) => p.name === port)?.containerPort ?? null;
}
function envValue(container, name, build, namespace) {
  const e = container.env?.find((x) => x.name === name);
  if (e) return e.value;
  for (const from of container.envFrom ?? []) {
    const ref = from.configMapRef?.name;
    const cm = ref && configMapData(build, ref, namespace);
    if (cm && name in cm) return cm[name];
  }
  return undefined;
}
function configMapData(build, name, namespace) {
  const g = build.generated.find((x) => x.kind === 'ConfigMap' && x.name === name && (x.namespace ?? namespace) === namespace);
  if (g) return g.data;
  const o = build.live.find((x) => x.obj.kind === 'ConfigMap' && x.obj.metadata?.name === name && ns(x.obj) === namespace);
  return o ? o.obj.data ?? {} : null;
}

// ---------------------------------------------------------------- checks
async function validateModel(o, build) {
  const { obj, file } = o;
  const where = `${file}: ${obj.apiVersion}/${obj.kind} ${obj.metadata?.name ?? '?'}`;
  if (!obj.apiVersion || !obj.kind) { fail(`${where}: no apiVersion or kind`); return where; }
  const Model = await modelFor(obj.apiVersion, obj.kind);
  if (!Model) { fail(`${where}: unknown apiVersion/kind`); return where; }
  try { new Model(obj).validate(); } catch (e) {
    fail(`${where}: invalid: ${(e.errors ?? []).map((x) => `${x.instancePath || '/'} ${x.message}`).join('; ') || e.message}`);
  }
  const dts = join(modelDir(obj.apiVersion).dir, `${obj.kind}.d.ts`);
  if (existsSync(dts)) checkKeys(where, obj, { file: dts }, '');
  else warn(`${where}: no type definitions at ${rel(dts)}: keys not checked`);
  if (!obj.metadata?.name) fail(`${where}: no metadata.name`);
  if (!CLUSTER_SCOPED.has(obj.kind) && !ns(obj)) fail(`${where}: no namespace (it would land in "default")`);
  return where;
}

function checkPod(o, where, build, appUid) {
  const { obj } = o;
  const ps = podSpecOf(obj);
  if (!ps) return;
  const batch = obj.kind === 'Job' || obj.kind === 'CronJob';
  const psc = ps.securityContext ?? {};
  const rootOk = ROOT_ALLOWED[idOf(obj)];
  for (const h of ['hostNetwork', 'hostPID', 'hostIPC']) if (ps[h]) fail(`${where}: ${h} is true`);
  if (obj.kind === 'Deployment' || obj.kind === 'DaemonSet' || obj.kind === 'StatefulSet') {
    if (!matchesSelector(obj.spec?.selector, podLabelsOf(obj))) fail(`${where}: spec.selector does not match the pod template's labels`);
  }
  for (const c of ps.initContainers ?? []) checkContainer(c, true);
  for (const c of ps.containers ?? []) checkContainer(c, false);

  function checkContainer(c, init) {
    const cw = `${where}: container ${c.name}`;
    const sidecar = init && c.restartPolicy === 'Always';
    if (!batch && (!init || sidecar)) {
      for (const p of ['livenessProbe', 'readinessProbe']) {
        const probe = c[p];
        if (!probe) { fail(`${cw}: no ${p}`); continue; }
        if (!probe.httpGet && !probe.tcpSocket && !probe.exec && !probe.grpc) fail(`${cw}: ${p} has no handler`);
        const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
        if (port !== undefined && portNumber(c, port) === null) fail(`${cw}: ${p} port ${port} is not a port of the container`);
      }
    } else if (init && !sidecar && (c.livenessProbe || c.readinessProbe)) {
      fail(`${cw}: an init container cannot have liveness or readiness probes`);
    }
    for (const side of ['requests', 'limits']) for (const r of ['cpu', 'memory']) {
      if (c.resources?.[side]?.[r] === undefined) fail(`${cw}: no resources.${side}.${r}`);
    }
    const req = c.resources?.requests ?? {}, lim = c.resources?.limits ?? {};
    if (mebibytes(req.memory) > mebibytes(lim.memory)) fail(`${cw}: memory request above its limit`);
    if (cpus(req.cpu) > cpus(lim.cpu)) fail(`${cw}: cpu request above its limit`);
    const image = c.image;
    if (typeof image !== 'string' || !image) fail(`${cw}: no image`);
    else {
      const base = image.split('@')[0];
      const colon = base.lastIndexOf(':');
      const tag = colon > base.lastIndexOf('/') ? base.slice(colon + 1) : null;
      if (!image.includes('@') && !tag) fail(`${cw}: image ${image} has no tag (kustomize images: must set one)`);
      if (tag === 'latest') fail(`${cw}: image ${image} uses the tag latest`);
    }
    const sc = c.securityContext ?? {};
    const eff = (k) => (sc[k] !== undefined ? sc[k] : psc[k]);
    const uid = eff('runAsUser');
    if (rootOk) {
      if (uid !== 0) fail(`${cw}: allowed to run as root (${rootOk}) but runAsUser is not 0: update ROOT_ALLOWED`);
    } else {
      if (eff('runAsNonRoot') !== true) fail(`${cw}: runAsNonRoot is not true`);
      if (!Number.isInteger(uid) || uid <= 0) fail(`${cw}: no fixed non-root runAsUser`);
      const appImage = APP_IMAGES.some((n) => typeof image === 'string' && (image === n || image.split('@')[0].replace(/:[^:/]*$/, '').endsWith(`/${n}`) || image.startsWith(`${n}:`)));
      if (appImage && appUid !== null && uid !== appUid) fail(`${cw}: runAsUser ${uid} is not the image's user ${appUid} (Dockerfile USER)`);
    }
    if (sc.allowPrivilegeEscalation !== false) fail(`${cw}: allowPrivilegeEscalation is not false`);
    if (sc.readOnlyRootFilesystem !== true) fail(`${cw}: readOnlyRootFilesystem is not true`);
    if (sc.privileged) fail(`${cw}: privileged`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) fail(`${cw}: capabilities do not drop ALL`);
    if ((sc.capabilities?.add ?? []).length) fail(`${cw}: capabilities added: ${sc.capabilities.add.join(', ')}`);
    const seccomp = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault') fail(`${cw}: seccompProfile is not RuntimeDefault`);
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref && !ref.optional && !secretExists(build, ref.name, ns(obj))) {
        warn(`${cw}: env ${e.name} reads secret ${ref.name}, which nothing in this build creates (create it by hand)`);
      }
    }
    for (const from of c.envFrom ?? []) {
      const ref = from.configMapRef;
      if (ref && !ref.optional && configMapData(build, ref.name, ns(obj)) === null) fail(`${cw}: envFrom ConfigMap ${ref.name} is not in this build`);
    }
  }
}
function secretExists(build, name, namespace) {
  return build.live.some(({ obj }) => ns(obj) === namespace && (
    (obj.kind === 'Secret' && obj.metadata?.name === name) ||
    (obj.kind === 'ExternalSecret' && (obj.spec?.target?.name ?? obj.metadata?.name) === name))) ||
    build.generated.some((g) => g.kind === 'Secret' && g.name === name);
}

function eq(where, what, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${where}: ${what} is ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}
function checkApi(o, where, build) {
  const { obj } = o;
  eq(where, 'replicas', obj.spec?.replicas, API.replicas);
  const c = obj.spec?.template?.spec?.containers?.find((x) => x.name === 'sf-api') ?? obj.spec?.template?.spec?.containers?.[0];
  if (!c) { fail(`${where}: no container`); return; }
  if (!c.ports?.some((p) => p.containerPort === API.port)) fail(`${where}: no container port ${API.port}`);
  eq(where, 'env PORT', envValue(c, 'PORT', build, ns(obj)), String(API.port));
  const db = c.env?.find((e) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef;
  eq(where, 'DATABASE_URL secretKeyRef', db && { name: db.name, key: db.key }, { name: 'db-credentials', key: 'url' });
  eq(where, 'resources.requests', c.resources?.requests, API.requests);
  eq(where, 'resources.limits', c.resources?.limits, API.limits);
  for (const [probe, want] of [['livenessProbe', API.liveness], ['readinessProbe', API.readiness]]) {
    const p = c[probe] ?? {};
    eq(where, `${probe} path`, p.httpGet?.path, want.path);
    eq(where, `${probe} port`, portNumber(c, p.httpGet?.port), API.port);
    eq(where, `${probe} initialDelaySeconds`, p.initialDelaySeconds, want.initialDelaySeconds);
    eq(where, `${probe} periodSeconds`, p.periodSeconds, want.periodSeconds);
  }
  const svc = build.live.find(({ obj: s }) => s.kind === 'Service' && ns(s) === ns(obj) && matches(s.spec?.selector, podLabelsOf(obj)) && s.spec?.type === 'LoadBalancer');
  if (!svc) { fail(`${where}: no Service of type LoadBalancer selects its pods`); return; }
  const sp = svc.obj.spec.ports?.find((p) => p.port === 80);
  if (!sp) fail(`${svc.file}: Service ${svc.obj.metadata.name}: no port 80`);
  else eq(`${svc.file}: Service ${svc.obj.metadata.name}`, 'port 80 target', portNumber(c, sp.targetPort ?? 80), API.port);
}
function checkMetricsProbes(o, where, build, port) {
  const c = o.obj.spec?.template?.spec?.containers?.[0];
  if (!c) return;
  eq(where, 'env METRICS_PORT', envValue(c, 'METRICS_PORT', build, ns(o.obj)), String(port));
  eq(where, 'livenessProbe', [c.livenessProbe?.httpGet?.path, portNumber(c, c.livenessProbe?.httpGet?.port)], ['/health', port]);
  eq(where, 'readinessProbe', [c.readinessProbe?.httpGet?.path, portNumber(c, c.readinessProbe?.httpGet?.port)], ['/ready', port]);
}
function checkWorker(o, where, build) {
  const { obj } = o;
  const ps = obj.spec?.template?.spec ?? {};
  const c = ps.containers?.[0];
  if (!c) return;
  const num = (name, dflt) => {
    const v = envValue(c, name, build, ns(obj));
    return v === undefined || v === '' ? dflt : Number(v);
  };
  let drain = num('SF_DRAIN_SECONDS', -1);
  if (drain === -1) drain = num('DRAIN_SECONDS', -1);
  if (drain === -1) drain = DRAIN_DEFAULT_S;
  const grace = ps.terminationGracePeriodSeconds ?? 30;
  if (!(grace > drain)) fail(`${where}: terminationGracePeriodSeconds ${grace} is not above the drain time ${drain} s`);
  let threads = num('WORKER_THREADS', 0);
  if (threads === 0) threads = Math.ceil(cpus(c.resources?.limits?.cpu ?? '1'));
  const v = Object.fromEntries(Object.entries(WORKER_DEFAULTS).map(([k, d]) => [k, num(k, d)]));
  const bound = WORKER_BASE_MB + v.SF_CACHE_MB + threads * v.SF_RUN_MAX_MB + v.SF_OUTCOME_BUDGET_MB + 2 * v.SF_COMPLETION_BATCH_MB;
  const limit = mebibytes(c.resources?.limits?.memory);
  if (!(limit > bound)) {
    fail(`${where}: memory limit ${c.resources?.limits?.memory} is not above the configured bound ${bound} MiB ` +
      `(${WORKER_BASE_MB} + ${v.SF_CACHE_MB} + ${threads} x ${v.SF_RUN_MAX_MB} + ${v.SF_OUTCOME_BUDGET_MB} + 2 x ${v.SF_COMPLETION_BATCH_MB})`);
  }
}
function checkHpa(o, where) {
  const s = o.obj.spec ?? {};
  eq(where, 'minReplicas', s.minReplicas, HPA.minReplicas);
  eq(where, 'maxReplicas', s.maxReplicas, HPA.maxReplicas);
  const target = (name) => s.metrics?.find((m) => m.type === 'Resource' && m.resource?.name === name)?.resource?.target;
  eq(where, 'cpu target', target('cpu'), { type: 'Utilization', averageUtilization: HPA.cpu });
  eq(where, 'memory target', target('memory'), { type: 'Utilization', averageUtilization: HPA.memory });
  const sd = s.behavior?.scaleDown ?? {}, su = s.behavior?.scaleUp ?? {};
  eq(where, 'scaleDown.stabilizationWindowSeconds', sd.stabilizationWindowSeconds, HPA.scaleDown.stabilizationWindowSeconds);
  eq(where, 'scaleDown.policies', sd.policies, HPA.scaleDown.policies);
  eq(where, 'scaleUp.stabilizationWindowSeconds', su.stabilizationWindowSeconds, HPA.scaleUp.stabilizationWindowSeconds);
  eq(where, 'scaleUp.selectPolicy', su.selectPolicy, HPA.scaleUp.selectPolicy);
  eq(where, 'scaleUp.policies', su.policies, HPA.scaleUp.policies);
}
function checkBuildWide(build, label) {
  const live = build.live;
  // One autoscaler per workload.
  const scalers = new Map();
  for (const { obj, file } of live) {
    let ref = null;
    if (obj.kind === 'HorizontalPodAutoscaler') ref = obj.spec?.scaleTargetRef;
    if (obj.kind === 'ScaledObject') ref = { kind: 'Deployment', ...obj.spec?.scaleTargetRef };
    if (!ref) continue;
    const key = `${ns(obj)}/${ref.kind}/${ref.name}`;
    scalers.set(key, [...(scalers.get(key) ?? []), `${obj.kind} ${obj.metadata?.name} (${file})`]);
    if (!live.some(({ obj: t }) => idOf(t) === key)) fail(`${label}: ${obj.kind} ${obj.metadata?.name} scales ${key}, which is not in the build`);
  }
  for (const [key, list] of scalers) if (list.length > 1) fail(`${label}: ${key} has ${list.length} autoscalers: ${list.join(', ')}`);
  // Selectors that select nothing.
  const pods = live.filter(({ obj }) => podSpecOf(obj));
  for (const { obj, file } of live) {
    const where = `${file}: ${obj.kind} ${obj.metadata?.name}`;
    if (obj.kind === 'Service' && obj.spec?.selector && !pods.some(({ obj: p }) => ns(p) === ns(obj) && matches(obj.spec.selector, podLabelsOf(p)))) fail(`${where}: selects no pod`);
    if (obj.kind === 'PodDisruptionBudget' && !pods.some(({ obj: p }) => ns(p) === ns(obj) && matchesSelector(obj.spec?.selector, podLabelsOf(p)))) fail(`${where}: selects no pod`);
    if (obj.kind === 'ServiceMonitor') {
      const svcs = live.filter(({ obj: s }) => s.kind === 'Service' && ns(s) === ns(obj) && matchesSelector(obj.spec?.selector, s.metadata?.labels));
      if (!svcs.length) fail(`${where}: selects no Service`);
      for (const ep of obj.spec?.endpoints ?? []) if (ep.port && !svcs.some(({ obj: s }) => s.spec?.ports?.some((p) => p.name === ep.port))) fail(`${where}: no selected Service has a port named ${ep.port}`);
    }
    if (obj.kind === 'PodMonitor') {
      const sel = pods.filter(({ obj: p }) => ns(p) === ns(obj) && matchesSelector(obj.spec?.selector, podLabelsOf(p)));
      if (!sel.length) fail(`${where}: selects no pod`);
      for (const ep of obj.spec?.podMetricsEndpoints ?? []) for (const { obj: p } of sel) {
        if (ep.port && !containersOf(p).some((c) => c.ports?.some((x) => x.name === ep.port))) fail(`${where}: ${p.kind} ${p.metadata?.name} has no port named ${ep.port}`);
      }
    }
  }
  // The farm's network policy: the ports the brief names.
  const pols = live.filter(({ obj }) => obj.kind === 'NetworkPolicy' && ns(obj) === 'signal-factory').map(({ obj }) => obj);
  if (live.some(({ obj }) => idOf(obj) === 'signal-factory/Deployment/sf-api')) {
    const ports = (dir) => new Set(pols.flatMap((p) => (p.spec?.[dir] ?? []).flatMap((r) => (r.ports ?? []).map((x) => x.port))));
    const ing = ports('ingress'), eg = ports('egress');
    for (const p of [3000, 9400, 9401]) if (!ing.has(p)) fail(`${label}: no NetworkPolicy of signal-factory admits port ${p}`);
    for (const p of [53, 5432, 6379, 443]) if (!eg.has(p)) fail(`${label}: no NetworkPolicy of signal-factory lets pods reach port ${p}`);
  }
}

// ---------------------------------------------------------------- Dockerfile
function checkDockerfile(path) {
  if (!existsSync(path)) { fail(`${path}: does not exist`); return null; }
  const lines = readFileSync(path, 'utf8').replace(/\\\n/g, ' ').split('\n');
  const stages = []; // {name, from, user}
  const copiedFrom = new Set();
  for (const raw of lines) {
    const line = raw.trim();
    let m;
    if ((m = line.match(/^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i))) stages.push({ from: m[1], name: m[2] ?? null, user: null });
    else if ((m = line.match(/^USER\s+(\S+)/i)) && stages.length) stages[stages.length - 1].user = m[1];
    else if ((m = line.match(/^COPY\s.*--from=(\S+)/i))) copiedFrom.add(m[1]);
  }
  if (!stages.length) { fail(`${path}: no FROM`); return null; }
  const byName = new Map(stages.filter((s) => s.name).map((s) => [s.name, s]));
  const root = (s) => (byName.has(s.from) && byName.get(s.from) !== s ? root(byName.get(s.from)) : s.from);
  const userOf = (s) => s.user ?? (byName.has(s.from) ? userOf(byName.get(s.from)) : null);
  for (const s of stages) {
    if (byName.has(s.from)) continue;
    if (!/^debian:bookworm(-slim)?$/.test(s.from)) fail(`${path}: FROM ${s.from}: bases must be debian:bookworm or debian:bookworm-slim (an explicit tag)`);
  }
  const used = new Set(stages.map((s) => s.from));
  // Final stages: images someone runs (--target), i.e. the last one and any
  // that no other stage builds on or copies from.
  const finals = stages.filter((s, i) => i === stages.length - 1 || (s.name && !used.has(s.name) && !copiedFrom.has(s.name)));
  let uid = null;
  for (const s of finals) {
    const u = userOf(s);
    const label = s.name ?? `stage ${stages.indexOf(s) + 1}`;
    if (!u) { fail(`${path}: final stage ${label} has no USER (it would run as root)`); continue; }
    const m = u.match(/^(\d+)(?::(\d+))?$/);
    if (!m) fail(`${path}: final stage ${label}: USER ${u} is not numeric (uid[:gid]); Kubernetes' runAsNonRoot needs a number`);
    else if (Number(m[1]) === 0) fail(`${path}: final stage ${label}: USER ${u} is root`);
    else if (uid === null) uid = Number(m[1]);
    else if (uid !== Number(m[1])) fail(`${path}: final stages run as different users (${uid}, ${m[1]})`);
    if (root(s) !== 'debian:bookworm-slim') fail(`${path}: final stage ${label} is not based on debian:bookworm-slim (${root(s)})`);
  }
  const last = stages[stages.length - 1];
  if (last.name && last.name !== 'runtime') warn(`${path}: the default (last) stage is ${last.name}, not runtime`);
  return uid;
}

// ---------------------------------------------------------------- main
async function main() {
  const args = process.argv.slice(2);
  let dockerfile = null;
  const dirs = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--dockerfile') dockerfile = args[++i];
    else dirs.push(args[i]);
  }
  if (!dirs.length) { console.error('usage: validate-k8s.mjs [--dockerfile FILE] KUSTOMIZATION_DIR...'); process.exit(2); }
  const appUid = dockerfile ? checkDockerfile(dockerfile) : null;
  let count = 0;
  const done = new Set(); // object checks once per (file, object) across builds
  for (const d of dirs) {
    const build = { objects: [], generated: [], deletes: [], live: [] };
    const [dir, ...extra] = d.split('+');
    const label = rel(resolve(dir)) + extra.map((c) => `+${c}`).join('');
    walk(resolve(dir), resolve(dir, '..', '(command line)'), build, new Set(), extra);
    const deleted = (o) => build.deletes.some((x) => x.kind === o.obj.kind && x.name === o.obj.metadata?.name);
    for (const x of build.deletes) {
      if (!build.objects.some((o) => o.obj.kind === x.kind && o.obj.metadata?.name === x.name)) fail(`${x.by}: deletes ${x.kind} ${x.name}, which is not in the build`);
    }
    build.live = build.objects.filter((o) => !deleted(o));
    const ids = new Map();
    for (const o of build.live) {
      const id = idOf(o.obj);
      if (ids.has(id)) fail(`${label}: ${id} defined twice (${ids.get(id)}, ${o.file})`);
      ids.set(id, o.file);
    }
    for (const o of build.live) {
      const key = `${o.file}#${idOf(o.obj)}#${JSON.stringify(containersOf(o.obj).map((c) => c.image))}`;
      const where = await validateModel(o, build);
      if (done.has(key)) continue;
      done.add(key);
      count++;
      checkPod(o, where, build, appUid);
      const id = idOf(o.obj);
      if (id === 'signal-factory/Deployment/sf-api') checkApi(o, where, build);
      if (id === 'signal-factory/Deployment/sf-worker') { checkWorker(o, where, build); checkMetricsProbes(o, where, build, METRICS_PORTS['sf-worker']); }
      if (id === 'signal-factory/Deployment/sf-scheduler') { eq(where, 'replicas', o.obj.spec?.replicas, 2); checkMetricsProbes(o, where, build, METRICS_PORTS['sf-scheduler']); }
      if (o.obj.kind === 'HorizontalPodAutoscaler' && o.obj.spec?.scaleTargetRef?.name === 'sf-worker') checkHpa(o, where);
    }
    checkBuildWide(build, label);
    for (const want of ['signal-factory/Deployment/sf-api', 'signal-factory/Deployment/sf-worker', 'signal-factory/Deployment/sf-scheduler', 'signal-factory/Job/sf-migrate']) {
      if ([...ids.keys()].some((x) => x.startsWith('signal-factory/')) && !ids.has(want)) fail(`${label}: ${want} is missing`);
    }
    console.log(`validate-k8s: ${label}: ${build.live.length} objects, ${build.generated.length} generated`);
  }
  for (const w of warnings) console.log(`warning: ${w}`);
  for (const p of problems) console.log(`error: ${p}`);
  console.log(`validate-k8s: ${count} objects checked, ${problems.size} problems`);
  process.exit(problems.size ? 1 : 0);
}
await main();
