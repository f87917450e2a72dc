#!/usr/bin/env -S node --max-semi-space-size=8
// --max-semi-space-size=8: a smaller young generation keeps a 500-host plan under 300 MB
// (BENCHMARKS.md); it costs a few percent of speed.
// Entry point of the published CLI: the compiled code lives in dist/.
import { enableCompileCache } from 'node:module';

enableCompileCache?.();
await import('../dist/cli/main.js');
