/**
 * busted-top frame time with 1,000 processes and 10,000 flows (target < 50 ms): each frame is
 * a store tick (snapshot), the UI reducer's tick (tombstones, provider ledger, sort, filter) and
 * a full Ink render of the 80x24 (and 200x60) screen, measured from the tick until the frame is
 * written. Not a test: it prints numbers.
 *
 *   npm run bench:tui -- [--frames N] [--processes N] [--flows-per-process N]
 *   (= NODE_ENV=production npx tsx bench/tui-frame.tsx: React's production build, as busted-top
 *   uses; the development build roughly doubles the frame time)
 */
import { writeFileSync } from 'node:fs';
import React from 'react';
import { render } from 'ink-testing-library';
import type { EventRecord } from '../src/core/records.js';
import { Store } from '../src/core/store.js';
import { App } from '../src/ui/App.js';
import { initialState, reducer } from '../src/ui/state.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const FRAMES = arg('frames', 40);
const PROCS = arg('processes', 1000);
const PER = arg('flows-per-process', 10);
const PROVIDERS = ['openai', 'anthropic', 'google', 'mistral', 'groq', 'ollama', null];

const T0 = Date.parse('2026-01-15T09:30:00.000Z');
let now = T0;
const iso = () => new Date(now).toISOString();
const store = new Store({ now: () => now });

function populate(): void {
  store.publish({ type: 'session', ts: iso(), v: 1, host: 'bench', kernel: 'bench', version: '0', enforce: false });
  for (let p = 0; p < PROCS; p++) {
    const pid = 10_000 + p;
    for (let f = 0; f < PER; f++) {
      const provider = PROVIDERS[(p + f) % PROVIDERS.length]!;
      store.publish({
        type: 'connect', ts: iso(), flow: `${p}-${f}`, pid, tid: pid, comm: `worker-${p % 50}`, uid: 1000 + (p % 7), gid: 1000,
        exe: '/usr/bin/python3', cgroup: '/bench', cgroupId: 1, startTime: p, proto: 'tcp', src: '10.0.0.1:40000',
        dst: '192.0.2.1:443', provider, host: provider ? `api.${provider}.test` : null, via: provider ? 'sni' : null, error: null,
      });
    }
  }
}

function trafficRound(round: number): void {
  for (let p = 0; p < PROCS; p++) {
    for (let f = 0; f < PER; f++) {
      const rec: EventRecord = { type: 'traffic', ts: iso(), flow: `${p}-${f}`, pid: 10_000 + p, tx: 100 + ((p * 7 + round) % 900), rx: 1000 + ((p * 13 + f * round) % 90_000) };
      store.publish(rec);
    }
  }
}

const quantiles = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(f * s.length))]!;
  return { median: q(0.5), p95: q(0.95), max: s[s.length - 1]! };
};
const stats = (xs: number[]) => {
  const q = quantiles(xs);
  return `median ${q.median.toFixed(1)} ms, p95 ${q.p95.toFixed(1)} ms, max ${q.max.toFixed(1)} ms`;
};
/** --json FILE: the frame times also as JSON (npm run bench reads them). */
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : undefined;
const screens: { columns: number; rows: number; frameMs: ReturnType<typeof quantiles> }[] = [];

async function measure(columns: number, rows: number): Promise<void> {
  const app = render(
    <App
      store={store} actions={{ kill: async () => ({ ok: false, message: '' }), quit: () => {} }} showAll={true}
      config={{ selfPid: process.pid, tombstoneMs: 5000, userName: (uid) => `user${uid}` }}
      options={{ source: { mode: 'live' }, recording: null, intervalMs: 1000 }} size={{ columns, rows }}
    />,
  );
  const storeTick: number[] = [];
  const frame: number[] = [];
  for (let i = 0; i < FRAMES; i++) {
    now += 1000;
    trafficRound(i);
    const before = app.frames.length;
    const t0 = performance.now();
    store.tick(); // snapshot → useSyncExternalStore → render → layout effect → reducer tick → render
    const t1 = performance.now();
    while (app.frames.length === before) await new Promise((r) => setImmediate(r));
    const t2 = performance.now();
    storeTick.push(t1 - t0);
    frame.push(t2 - t0);
  }
  const last = app.lastFrame() ?? '';
  app.unmount();
  if (!last.includes('worker-')) throw new Error('the frame does not show the rows');
  console.log(`  ${columns}x${rows}: frame (tick → frame written) ${stats(frame)}; of which synchronous ${stats(storeTick)}`);
  screens.push({ columns, rows, frameMs: quantiles(frame) });
}

populate();
now += 500;
trafficRound(0);
const s0 = store.tick();
console.log(`busted-top frame time: ${s0.processes.length} processes, ${s0.flows.length} flows, ${FRAMES} frames each`);
// The store's part alone (core/flows.ts), and the reducer's part alone, for reference.
const coreTimes: number[] = [];
const reducerTimes: number[] = [];
let state = initialState({ selfPid: 0, tombstoneMs: 5000, userName: String }, { showAll: true });
for (let i = 0; i < 20; i++) {
  now += 1000;
  trafficRound(i);
  const a = performance.now();
  const snap = store.tick();
  const b = performance.now();
  state = reducer(state, { type: 'tick', snapshot: snap });
  const c = performance.now();
  coreTimes.push(b - a);
  reducerTimes.push(c - b);
}
console.log(`  store.tick (core snapshot) alone: ${stats(coreTimes)}`);
console.log(`  UI reducer tick alone:            ${stats(reducerTimes)}`);
await measure(80, 24);
await measure(200, 60);
console.log('  target: < 50 ms per frame');
if (jsonOut) {
  writeFileSync(jsonOut, `${JSON.stringify({ processes: s0.processes.length, flows: s0.flows.length, frames: FRAMES, targetMs: 50, screens }, null, 2)}\n`);
}
