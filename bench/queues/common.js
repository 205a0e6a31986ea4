'use strict';
// The tiny-job workload of scripts/bench-farm, for a Node queue library.
//
// The parent process forks W worker processes, waits until each has connected
// and run one untimed warm-up job, reads the CPU counters, enqueues N jobs in
// one bulk call, polls the workers (IPC, every 20 ms) until N completions have
// been reported, and prints one JSON line:
//   jobs/s = N / (last completion - the moment before the bulk enqueue),
//   cpu_us_per_job = delta of utime + stime (/proc/<pid>/stat) of the parent,
//   every worker process and redis-server, divided by N.
// Job i (1..N) carries {fast: i}; its work is jobWork() below.
const { fork, execFileSync } = require('node:child_process');
const fs = require('node:fs');

// The bench's data set: 100 daily bars, close = 100.5 + 10 sin(g / 7), g = 1..100
// (the BENCH rows scripts/bench-farm inserts).
const BARS = 100;
function closes() {
  const c = new Float64Array(BARS);
  for (let g = 1; g <= BARS; g++) c[g - 1] = 100.5 + 10 * Math.sin(g / 7);
  return c;
}

function sma(c, period) {
  const out = new Float64Array(c.length).fill(NaN);
  if (period < 1) return out;
  let sum = 0;
  for (let i = 0; i < c.length; i++) {
    sum += c[i];
    if (i >= period) sum -= c[i - period];
    if (i >= period - 1) out[i] = sum / period;
  }
  return out;
}

// The job: SMA(fast) / SMA(20) crossover on the closes, long on a cross above,
// flat on a cross below, filled at the bar's close; returns the trade count,
// the final equity (from 1) and the maximum drawdown. The farm's engine does
// the same crossover plus its full metrics set, a result row in PostgreSQL.
function jobWork(c, fast) {
  const f = sma(c, fast), s = sma(c, 20);
  let pos = false, entry = 0, eq = 1, peak = 1, dd = 0, trades = 0;
  for (let i = 1; i < c.length; i++) {
    const up = f[i - 1] <= s[i - 1] && f[i] > s[i];
    const down = f[i - 1] >= s[i - 1] && f[i] < s[i];
    if (!pos && up) { pos = true; entry = c[i]; }
    else if (pos && down) { pos = false; eq *= c[i] / entry; trades++; }
    const mark = pos ? eq * c[i] / entry : eq;
    if (mark > peak) peak = mark;
    if (1 - mark / peak > dd) dd = 1 - mark / peak;
  }
  return { trades, equity: eq, max_drawdown: dd };
}

const HZ = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
function cpuTicks(pid) { // utime + stime of a live process, all its threads
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

function args() {
  const a = { port: 6379, redisPid: 0, jobs: 20000, workers: 2, concurrency: 64, timeout: 600 };
  const v = process.argv.slice(2);
  for (let i = 0; i + 1 < v.length; i += 2) {
    const k = v[i].replace(/^--/, '').replace(/-(.)/g, (_, x) => x.toUpperCase());
    if (!(k in a)) throw new Error(`unknown option ${v[i]}`);
    a[k] = Number(v[i + 1]);
  }
  return a;
}

// Worker side: adapter.work(opts, onDone) starts consuming, calls onDone()
// after each job's completion has been written to Redis; resolves when ready.
async function workerMain(adapter, opts) {
  let n = 0, last = 0;
  const close = await adapter.work(opts, () => { n++; last = Date.now(); });
  process.on('disconnect', () => process.exit(1)); // the producer is gone
  process.on('message', async (m) => {
    if (m === 'report') process.send({ n, last });
    if (m === 'stop') { await close(); process.exit(0); }
  });
  process.send('ready');
}

function waitFor(child, pred) {
  return new Promise((resolve) => {
    const h = (m) => { if (pred(m)) { child.off('message', h); resolve(m); } };
    child.on('message', h);
  });
}

async function poll(children, want, deadline) {
  for (;;) {
    const reps = await Promise.all(children.map((ch) => {
      const p = waitFor(ch, (m) => m && typeof m.n === 'number');
      ch.send('report');
      return p;
    }));
    const n = reps.reduce((s, r) => s + r.n, 0);
    if (n >= want) return { n, last: Math.max(...reps.map((r) => r.last)) };
    if (Date.now() > deadline) throw new Error(`${n}/${want} jobs completed at the timeout`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function parentMain(adapter, opts) {
  const children = [];
  for (let i = 0; i < opts.workers; i++) {
    const ch = fork(process.argv[1], process.argv.slice(2), { env: { ...process.env, SF_QB_ROLE: 'worker' } });
    children.push(ch);
  }
  await Promise.all(children.map((ch) => waitFor(ch, (m) => m === 'ready')));
  const q = await adapter.open(opts);
  await adapter.enqueue(q, [{ fast: 10 }]); // warm-up: one job, untimed
  await poll(children, 1, Date.now() + 60000);
  const pids = [process.pid, ...children.map((c) => c.pid), opts.redisPid].filter((p) => p > 0);
  const c0 = pids.map(cpuTicks);
  const t0 = Date.now();
  const jobs = [];
  for (let i = 1; i <= opts.jobs; i++) jobs.push({ fast: i });
  await adapter.enqueue(q, jobs);
  const { n, last } = await poll(children, opts.jobs + 1, t0 + opts.timeout * 1000);
  const c1 = pids.map(cpuTicks);
  const us = (k) => ((c1[k] - c0[k]) * 1e6) / HZ / opts.jobs;
  const secs = (last - t0) / 1000;
  const out = {
    system: adapter.name, jobs: opts.jobs, completed: n - 1, secs,
    jobs_per_s: opts.jobs / secs,
    cpu_us_per_job: c1.reduce((s, v, k) => s + (v - c0[k]), 0) * 1e6 / HZ / opts.jobs,
    cpu_us_per_job_parent: us(0),
    cpu_us_per_job_workers: children.reduce((s, _, k) => s + us(k + 1), 0),
    cpu_us_per_job_redis: opts.redisPid > 0 ? us(pids.length - 1) : null,
    workers: opts.workers, concurrency: opts.concurrency,
  };
  await Promise.all(children.map((ch) => new Promise((r) => { ch.once('exit', r); ch.send('stop'); })));
  await adapter.closeQueue(q);
  process.stdout.write(JSON.stringify(out) + '\n');
}

function main(adapter) {
  const opts = args();
  const run = process.env.SF_QB_ROLE === 'worker' ? workerMain : parentMain;
  run(adapter, opts).catch((e) => { console.error(`${adapter.name}: ${e.stack || e}`); process.exit(1); });
}

module.exports = { closes, jobWork, main };
