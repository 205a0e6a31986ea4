#!/usr/bin/env node
// The project's rules for the GitHub workflows, and their run: blocks as
// shell scripts (scripts/check-workflows runs shellcheck on those).
//
//   node tests/tools/workflows.mjs OUT_DIR WORKFLOW.yml...
//
// Rules, one line per breach on stdout (exit 1 when any):
//   - a top-level permissions: (least privilege starts there);
//   - a concurrency: group;
//   - every job has timeout-minutes;
//   - every action is pinned to a full commit SHA with its version in a
//     comment (uses: owner/repo@<40 hex> # vX.Y.Z); local ./ actions and
//     docker:// images with a digest are allowed;
//   - no pull_request_target (it runs with secrets on a fork's code);
//   - no ${{ github.event.* }}, github.head_ref or inputs.* inside run:
//     (text an outsider chooses, pasted into a script): use env:.
// Each run: block is written to OUT_DIR/<file>--<job>--<step number>.sh with
// the shebang of the shell GitHub would use (the step's shell:, the
// defaults, else bash on the runner and sh in a container job), each
// ${{ expression }} replaced by a plain word of the same length.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseDocument } from 'yaml';

const [outDir, ...files] = process.argv.slice(2);
if (!outDir || !files.length) {
  console.error('usage: workflows.mjs OUT_DIR WORKFLOW.yml...');
  process.exit(2);
}
let problems = 0;
const fail = (msg) => { console.log(msg); problems++; };
const SHEBANG = { bash: '#!/usr/bin/env bash', sh: '#!/bin/sh' };
const PINNED = /^[\w.-]+\/[\w./-]+@[0-9a-f]{40}$/;

for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const doc = parseDocument(text);
  if (doc.errors.length) { fail(`${file}: YAML: ${doc.errors[0].message}`); continue; }
  const wf = doc.toJS() ?? {};
  const on = wf.on ?? wf[true];
  if (!('permissions' in wf)) fail(`${file}: no top-level permissions: (start from contents: read or {})`);
  if (!wf.concurrency) fail(`${file}: no concurrency: group`);
  const events = typeof on === 'string' ? [on] : Array.isArray(on) ? on : Object.keys(on ?? {});
  if (events.includes('pull_request_target')) fail(`${file}: pull_request_target runs a fork's code with secrets`);

  // uses: lines, checked on the text to see the version comment.
  lines.forEach((line, i) => {
    const m = line.match(/^\s*(?:-\s+)?uses:\s*["']?([^\s"'#]+)["']?\s*(#\s*(\S+))?/);
    if (!m) return;
    const ref = m[1], comment = m[3];
    if (ref.startsWith('./')) return;
    if (ref.startsWith('docker://')) {
      if (!/@sha256:[0-9a-f]{64}$/.test(ref)) fail(`${file}:${i + 1}: ${ref}: pin the image by digest`);
      return;
    }
    if (!PINNED.test(ref)) fail(`${file}:${i + 1}: ${ref}: pin the action to a full commit SHA (owner/repo@<40 hex> # vX.Y.Z)`);
    else if (!comment || !/^v?\d+(\.\d+)*$/.test(comment)) fail(`${file}:${i + 1}: ${ref}: say which version the SHA is in a comment (# vX.Y.Z)`);
  });

  const wfShell = wf.defaults?.run?.shell;
  for (const [jobId, job] of Object.entries(wf.jobs ?? {})) {
    if (job?.uses) continue; // a reusable workflow: no steps here
    if (job?.['timeout-minutes'] === undefined) fail(`${file}: job ${jobId}: no timeout-minutes (the default is 6 hours)`);
    const jobShell = job?.defaults?.run?.shell ?? wfShell ?? (job?.container ? 'sh' : 'bash');
    (job?.steps ?? []).forEach((step, n) => {
      if (typeof step?.run !== 'string') return;
      const injected = step.run.match(/\$\{\{[^}]*\b(github\.event\.|github\.head_ref|inputs\.)[^}]*\}\}/);
      if (injected) fail(`${file}: job ${jobId}, step ${n + 1}: ${injected[0]} in run: is pasted into the script (an injection): pass it through env:`);
      const shell = String(step.shell ?? jobShell).split(/\s/)[0];
      const bang = SHEBANG[shell];
      if (!bang) return; // pwsh, python: not shell
      const body = step.run.replace(/\$\{\{[\s\S]*?\}\}/g, (e) => 'GH_EXPR'.padEnd(e.length, '_'));
      const name = `${basename(file)}--${jobId}--${n + 1}.sh`;
      writeFileSync(join(outDir, name), `${bang}\n# ${file}: job ${jobId}, step ${n + 1}${step.name ? ` (${step.name})` : ''}\n${body}\n`);
    });
  }
}
process.exit(problems ? 1 : 0);
