/**
 * BpfObject.close() (root): every step runs even when one throws. An owned resource whose close
 * fails (a ring buffer's munmap) must not keep the links attached or the object loaded: busted
 * fails open on every exit path.
 */
import { kernelTest } from '../helpers/kernel.js';

kernelTest('close() destroys the links and closes the object even when an owned resource throws, then throws that error', async (t) => {
  const { BpfObject } = await import('../../src/bpf/object.js');
  const { OBJECT_PATH } = await import('../../src/bpf/probe.js');
  const obj = BpfObject.open(OBJECT_PATH);
  obj.setAutoload((name) => name === 'busted_exec');
  obj.load();
  const prog = obj.programs().find((p) => p.name === 'busted_exec')!;
  obj.attach(prog);
  t.is(obj.attachedCount, 1);
  let closedAfter = false;
  obj.own({ close: () => void (closedAfter = true) }); // owned first: closed last
  obj.own({ close: () => { throw new Error('munmap failed'); } });
  t.throws(() => obj.close(), { message: 'munmap failed' });
  t.is(obj.attachedCount, 0, 'the link was destroyed all the same');
  t.true(closedAfter, 'the resources after the one that threw were closed too');
  t.notThrows(() => obj.close(), 'a second close has nothing left to do');
});
