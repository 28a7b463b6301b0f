import test from 'ava';
import { CAP, effectiveCaps, findCgroup2Mount, hasCap, privilegeStatus } from '../../src/bpf/preflight.js';
import { nsToTicks } from '../../src/core/identity.js';

test('CapEff is parsed from /proc/self/status text', (t) => {
  const caps = effectiveCaps('Name:\tx\nCapEff:\t000000c000001000\n');
  t.true(hasCap(caps, CAP.BPF));
  t.true(hasCap(caps, CAP.PERFMON));
  t.true(hasCap(caps, CAP.NET_ADMIN));
  t.false(hasCap(caps, CAP.SYS_ADMIN));
  t.is(effectiveCaps('nothing here'), 0n);
});

test('privileges: CAP_SYS_ADMIN alone is enough; otherwise the missing caps are named', (t) => {
  t.true(privilegeStatus(1n << 21n, 1000).ok);
  t.deepEqual(privilegeStatus(0n, 1000), { ok: false, root: false, missing: ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN'] });
  t.deepEqual(privilegeStatus((1n << 39n) | (1n << 38n) | (1n << 12n), 1000), { ok: true, root: false, missing: [] });
});

test('the cgroup v2 mount is found in /proc/mounts wherever it is', (t) => {
  const mounts = 'tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n';
  t.is(findCgroup2Mount(mounts), '/sys/fs/cgroup/unified');
  t.is(findCgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'), '/sys/fs/cgroup');
  t.is(findCgroup2Mount('proc /proc proc rw 0 0\n'), null);
});

test('kernel start_boottime ns convert to /proc/PID/stat clock ticks', (t) => {
  t.is(nsToTicks(12_345_678_901n), 1234);
  t.is(nsToTicks(0n), 0);
});
