/** The `execs` map sweep: entries of processes that are gone go, the others stay (real kernel map). */
import { EXEC } from '../../src/bpf/abi.js';
import { BpfObject } from '../../src/bpf/object.js';
import { OBJECT_PATH, sweepExecMap } from '../../src/bpf/probe.js';
import { nsToTicks } from '../../src/core/identity.js';
import { readStartTime } from '../../src/core/identity-proc.js';
import { kernelTest } from '../helpers/kernel.js';

kernelTest('the execs sweep removes the paths of exited processes and keeps the living', async (t) => {
  const obj = BpfObject.open(OBJECT_PATH);
  try {
    obj.setAutoload(() => false);
    obj.load();
    const execs = obj.map('execs');
    const put = (tgid: number, startTicks: number) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(tgid);
      const value = Buffer.alloc(EXEC.size);
      value.writeBigUInt64LE(BigInt(startTicks) * 10_000_000n, EXEC.start_ns); // ticks of 10 ms
      value.write('/usr/bin/x', EXEC.path);
      execs.update(key, value);
    };
    put(process.pid, readStartTime(process.pid)!); // alive
    put(process.ppid, readStartTime(process.ppid)! + 1); // a pid now used by another process: gone
    put(4_000_000, 1); // above the default pid_max: no such process
    const alive = (tgid: number, startNs: bigint) => readStartTime(tgid) === nsToTicks(startNs);
    t.is(sweepExecMap(execs, alive), 2);
    t.deepEqual(execs.keys().map((k) => k.readUInt32LE(0)), [process.pid]);
    t.is(sweepExecMap(execs, alive), 0, 'nothing left to remove');
  } finally {
    obj.close();
  }
});
