'use strict';
// The tiny-job workload on bee-queue (see common.js): the producer saves the N
// jobs with one saveAll, W worker processes run them with process(C, ...).
// bee-queue's defaults otherwise (succeeded jobs and their results stay in
// Redis, stall checks every 5 s), except that nobody subscribes to job events:
// the producer has getEvents and storeJobs off, the workers sendEvents off.
const Queue = require('bee-queue');
const { closes, jobWork, main } = require('./common');

const redis = (o) => ({ host: '127.0.0.1', port: o.port });

main({
  name: 'bee-queue',
  async open(o) {
    const q = new Queue('bench', { redis: redis(o), isWorker: false, getEvents: false, storeJobs: false });
    await q.ready();
    return q;
  },
  async enqueue(q, jobs) {
    const errs = await q.saveAll(jobs.map((d) => q.createJob(d)));
    if (errs.size) throw new Error(`bee-queue: ${errs.size} jobs not saved`);
  },
  async closeQueue(q) { await q.close(); },
  async work(o, onDone) {
    const c = closes();
    const q = new Queue('bench', { redis: redis(o), isWorker: true, getEvents: false, sendEvents: false });
    await q.ready();
    q.on('succeeded', onDone); // emitted once the job's completion MULTI has run
    q.on('failed', (job, err) => { console.error(`bee-queue: job failed: ${err}`); process.exit(1); });
    q.process(o.concurrency, async (job) => jobWork(c, job.data.fast));
    return () => q.close();
  },
});
