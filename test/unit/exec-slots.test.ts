/** The `execs` array: an exec writes its process's slot in the kernel; readExecSlot takes only its own process's path. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { EXEC, EXEC_SLOTS } from '../../src/bpf/abi.js';
import { BpfObject } from '../../src/bpf/object.js';
import { OBJECT_PATH, readExecSlot } from '../../src/bpf/probe.js';
import { nsToTicks } from '../../src/core/identity.js';
import { readStartTime } from '../../src/core/identity-proc.js';
import { kernelTest } from '../helpers/kernel.js';

const keyOf = (tgid: number) => {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(tgid & (EXEC_SLOTS - 1));
  return key;
};

kernelTest('an exec fills its slot in the execs array; a reader takes the path only for the same tgid and start time', async (t) => {
  const obj = BpfObject.open(OBJECT_PATH);
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    obj.setAutoload((name) => name === 'busted_exec');
    obj.load();
    const prog = obj.programs().find((p) => p.name === 'busted_exec')!;
    obj.attach(prog);
    const execs = obj.map('execs');
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' }); // exec'd after the attach
    try {
      await once(sleeper, 'spawn');
      const pid = sleeper.pid!;
      const slot = Buffer.alloc(EXEC.size);
      let written = false;
      for (let i = 0; i < 100 && !written; i++) {
        written = execs.lookup(keyOf(pid), slot) && slot.readUInt32LE(EXEC.tgid) === pid;
        if (!written) await new Promise((r) => setTimeout(r, 20));
      }
      t.true(written, 'the exec wrote the slot');
      t.is(slot.readBigUInt64LE(EXEC.seq) % 2n, 0n, 'seq is even once the write is done');
      const startNs = slot.readBigUInt64LE(EXEC.start_ns);
      t.is(nsToTicks(startNs) as number | null, readStartTime(pid), 'start_ns is the process\'s start time');
      const path = readExecSlot(execs, pid, startNs);
      t.truthy(path);
      t.regex(path!, /(^|\/)sleep$/);
      t.is(readExecSlot(execs, pid, startNs + 1n), null, 'another start time: a reused tgid');
      t.is(readExecSlot(execs, pid + EXEC_SLOTS, startNs), null, 'another tgid in the same slot');
      // the child spawned before the attach has no slot of its own (unless an exec since shares it)
      const early = Buffer.alloc(EXEC.size);
      if (execs.lookup(keyOf(child.pid!), early) && early.readUInt32LE(EXEC.tgid) === child.pid) {
        t.fail('an exec before the attach was recorded');
      }
      // a slot being written (odd seq) is not read
      slot.writeBigUInt64LE(slot.readBigUInt64LE(EXEC.seq) + 1n, EXEC.seq);
      execs.update(keyOf(pid), slot);
      t.is(readExecSlot(execs, pid, startNs), null, 'odd seq: being written');
    } finally {
      sleeper.kill();
    }
  } finally {
    child.kill();
    obj.close();
  }
});
