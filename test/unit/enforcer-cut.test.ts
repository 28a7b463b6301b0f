/** Enforcer.setCut on the real kernel maps: the packet programs are wanted while any flow is cut. */
import { Enforcer } from '../../src/bpf/enforcer.js';
import { BpfObject } from '../../src/bpf/object.js';
import { OBJECT_PATH, enforcerMaps } from '../../src/bpf/probe.js';
import { kernelTest } from '../helpers/kernel.js';

kernelTest('setCut: the first cut asks for the packet programs and the last uncut lets them go; a flow cut twice counts once', async (t) => {
  const obj = BpfObject.open(OBJECT_PATH);
  try {
    obj.setAutoload(() => false);
    obj.load();
    const calls: boolean[] = [];
    const enforcer = new Enforcer(enforcerMaps(obj), (cutting) => calls.push(cutting));
    enforcer.setCut(11n, true);
    enforcer.setCut(11n, true); // a reload cuts the same flow again
    enforcer.setCut(12n, true);
    t.deepEqual(calls, [true]);
    enforcer.setCut(11n, false);
    t.deepEqual(calls, [true], 'flow 12 is still cut');
    enforcer.setCut(12n, false);
    t.deepEqual(calls, [true, false]);
    enforcer.setCut(12n, false); // not cut: nothing changes
    t.deepEqual(calls, [true, false]);
    t.deepEqual(obj.map('cut_socks').keys(), []);
  } finally {
    obj.close();
  }
});
