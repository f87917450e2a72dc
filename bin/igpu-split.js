#!/usr/bin/env node
// Entry point of the published CLI: the compiled code lives in dist/.

// Node 20 lacks what the compiled code uses; say so in one line instead of a SyntaxError.
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(
    `igpu-split: needs Node.js 22 or later, this is ${process.version} — run it through npm start (it installs Node.js 24 into .node/), or install Node.js 24\n`,
  );
  process.exit(2);
}

const { enableCompileCache } = await import('node:module');
enableCompileCache?.();

// Certificates are always verified: the program drops NODE_TLS_REJECT_UNAUTHORIZED before
// its first connection (src/cli/insecure-tls.ts says why), in the restarted process too.

// The whole-lab commands run with a smaller V8 young generation, which keeps a plan for
// 500 hosts under 300 MB (BENCHMARKS.md) at a few percent of speed. The flag must be
// given at start, so those commands start once more with it (not --help, not doctor).
const FLAG = '--max-semi-space-size=8';
const WHOLE_LAB = new Set(['plan', 'apply', 'verify', 'status', 'rollback']);
if (WHOLE_LAB.has(process.argv[2] ?? '') && !process.execArgv.includes(FLAG)) {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [...process.execArgv, FLAG, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  // A signal meant for this process goes to the child, which says what it leaves behind.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  const code = await new Promise((resolve) => child.once('close', (status) => resolve(status ?? 2)));
  process.exit(code);
}

await import('../dist/cli/main.js');
