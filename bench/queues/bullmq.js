'use strict';
// The tiny-job workload on BullMQ (see common.js): a Queue adds the N jobs
// with one addBulk, W Worker processes of concurrency C run them. BullMQ's
// defaults otherwise: completed jobs and their return values stay in Redis
// (removeOnComplete false), events go to its Redis stream, 30 s job locks.
const { Queue, Worker } = require('bullmq');
const { closes, jobWork, main } = require('./common');

const conn = (o) => ({ host: '127.0.0.1', port: o.port, maxRetriesPerRequest: null });

main({
  name: 'bullmq',
  async open(o) {
    const q = new Queue('bench', { connection: conn(o) });
    await q.waitUntilReady();
    return q;
  },
  async enqueue(q, jobs) {
    await q.addBulk(jobs.map((data) => ({ name: 'bt', data })));
  },
  async closeQueue(q) { await q.close(); },
  async work(o, onDone) {
    const c = closes();
    const w = new Worker('bench', async (job) => jobWork(c, job.data.fast),
      { connection: conn(o), concurrency: o.concurrency });
    w.on('completed', onDone); // emitted once moveToFinished has run in Redis
    w.on('failed', (job, err) => { console.error(`bullmq: job failed: ${err}`); process.exit(1); });
    await w.waitUntilReady();
    return () => w.close();
  },
});
