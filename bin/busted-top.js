#!/usr/bin/env node
// Runs the TypeScript entry point through tsx, so an install needs no build step.
// React's development build adds per-render bookkeeping a monitor does not need: it is used only
// when asked for by name (NODE_ENV=development), not because a test runner set NODE_ENV=test.
if (process.env.NODE_ENV !== 'development') process.env.NODE_ENV = 'production';
const { register } = await import('tsx/esm/api');

register();
await import('../src/cli/busted-top.tsx');
