import test from 'ava';
import { settled } from '../../src/core/settled.js';

test('settled: resolves as soon as the promise is fulfilled, long before the limit', async (t) => {
  const t0 = performance.now();
  await settled(new Promise((r) => setTimeout(r, 10)), 60_000);
  t.true(performance.now() - t0 < 5_000);
});

test('settled: a rejected promise ends the wait too, without an unhandled rejection', async (t) => {
  let unhandled = 0;
  const onUnhandled = () => unhandled++;
  process.on('unhandledRejection', onUnhandled);
  try {
    const t0 = performance.now();
    await settled(Promise.reject(new Error('no such directory')), 60_000);
    t.true(performance.now() - t0 < 5_000);
    await new Promise((r) => setTimeout(r, 20));
    t.is(unhandled, 0);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('settled: a promise that never settles is waited for the limit, then left', async (t) => {
  const t0 = performance.now();
  await settled(new Promise(() => {}), 50);
  const waited = performance.now() - t0;
  t.true(waited >= 45, `waited ${waited} ms`);
});
