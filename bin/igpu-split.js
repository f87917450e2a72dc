#!/usr/bin/env node
// Entry point of the published CLI: the compiled code lives in dist/.
import { enableCompileCache } from 'node:module';

enableCompileCache?.();
await import('../dist/cli/main.js');
