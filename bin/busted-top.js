#!/usr/bin/env node
// Runs the TypeScript entry point through tsx, so an install needs no build step.
// React's development build adds per-render bookkeeping a monitor does not need.
process.env.NODE_ENV ??= 'production';
const { register } = await import('tsx/esm/api');

register();
await import('../src/cli/busted-top.tsx');
