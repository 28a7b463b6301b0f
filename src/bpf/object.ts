/**
 * A BPF object's lifecycle: open → set .rodata → load → attach → close. Links are owned by this
 * process (no pinning): if it exits or is killed, the kernel detaches everything (fail-open).
 * close() releases every link, ring buffer and the object, and is safe to call twice.
 */
import koffi from 'koffi';
import { existsSync } from 'node:fs';
import { BpfError, checkInt, checkPtr, libbpf, strerror, takeLibbpfLog, withSignalsHeld, type Ptr } from './libbpf.js';

export interface Closable {
  close(): void;
}

export class BpfMap {
  constructor(
    readonly name: string,
    private readonly handle: Ptr,
  ) {}

  get fd(): number {
    return checkInt(`bpf_map__fd(${this.name})`, libbpf().bpf_map__fd(this.handle) as number);
  }

  get maxEntries(): number {
    return libbpf().bpf_map__max_entries(this.handle) as number;
  }

  get keySize(): number {
    return libbpf().bpf_map__key_size(this.handle) as number;
  }

  get valueSize(): number {
    return libbpf().bpf_map__value_size(this.handle) as number;
  }

  /** enum bpf_map_type (BPF_MAP_TYPE_HASH 1, LRU_HASH 9, LPM_TRIE 11, RINGBUF 27, …). */
  get type(): number {
    return libbpf().bpf_map__type(this.handle) as number;
  }

  setMaxEntries(n: number): void {
    checkInt(`bpf_map__set_max_entries(${this.name})`, libbpf().bpf_map__set_max_entries(this.handle, n) as number);
  }

  /** Inserts or replaces one element (BPF_ANY). */
  update(key: Buffer, value: Buffer): void {
    checkInt(`bpf_map_update_elem(${this.name})`, libbpf().bpf_map_update_elem(this.fd, key, value, 0) as number);
  }

  /** Deletes one element; returns false when the key was absent. */
  delete(key: Buffer): boolean {
    const ret = libbpf().bpf_map_delete_elem(this.fd, key) as number;
    if (ret === -2) return false; // ENOENT
    checkInt(`bpf_map_delete_elem(${this.name})`, ret);
    return true;
  }

  /** Every key (bpf_map_get_next_key), copied; at most `max` of them. */
  keys(max = Infinity): Buffer[] {
    const lib = libbpf();
    const fd = this.fd;
    const out: Buffer[] = [];
    let prev: Buffer | null = null;
    const next = Buffer.alloc(this.keySize);
    while (out.length < max && (lib.bpf_map_get_next_key(fd, prev, next) as number) === 0) {
      prev = Buffer.from(next);
      out.push(prev);
    }
    return out;
  }

  /** Looks up one element; returns false when the key is absent. */
  lookup(key: Buffer, value: Buffer): boolean {
    const ret = libbpf().bpf_map_lookup_elem(this.fd, key, value) as number;
    if (ret === -2) return false; // ENOENT
    checkInt(`bpf_map_lookup_elem(${this.name})`, ret);
    return true;
  }
}

export class BpfProgram {
  constructor(
    readonly name: string,
    readonly section: string,
    readonly handle: Ptr,
  ) {}
}

export class BpfObject implements Closable {
  private obj: Ptr | null;
  private readonly links: Ptr[] = [];
  private readonly owned: Closable[] = [];
  private loaded = false;

  private constructor(
    readonly path: string,
    obj: Ptr,
  ) {
    this.obj = obj;
  }

  static open(path: string): BpfObject {
    if (!existsSync(path)) {
      throw new Error(`The BPF object ${path} is missing: run \`npm run build:bpf\` (needs clang, libbpf-dev, bpftool).`);
    }
    const lib = libbpf();
    takeLibbpfLog();
    const obj = checkPtr(`bpf_object__open_file(${path})`, lib.bpf_object__open_file(path, null));
    return new BpfObject(path, obj);
  }

  private get handle(): Ptr {
    if (this.obj === null) throw new Error('the BPF object is already closed');
    return this.obj;
  }

  map(name: string): BpfMap {
    const m = libbpf().bpf_object__find_map_by_name(this.handle, name);
    if (!m) throw new Error(`The BPF object has no map named ${name}: rebuild it with \`npm run build:bpf\`.`);
    return new BpfMap(name, m);
  }

  programs(): BpfProgram[] {
    const lib = libbpf();
    const out: BpfProgram[] = [];
    let prog: Ptr = lib.bpf_object__next_program(this.handle, null);
    while (prog) {
      out.push(new BpfProgram(lib.bpf_program__name(prog) as string, lib.bpf_program__section_name(prog) as string, prog));
      prog = lib.bpf_object__next_program(this.handle, prog);
    }
    return out;
  }

  /** Chooses which programs are loaded (all by default). Call before load(). */
  setAutoload(names: (name: string) => boolean): void {
    for (const p of this.programs()) {
      checkInt(`bpf_program__set_autoload(${p.name})`, libbpf().bpf_program__set_autoload(p.handle, names(p.name)) as number);
    }
  }

  /** Writes `const volatile` globals: `patch` gets the current .rodata bytes to change in place. */
  setRodata(patch: (rodata: DataView) => void): void {
    if (this.loaded) throw new Error('.rodata can only be set before load()');
    const lib = libbpf();
    const map = lib.bpf_object__find_map_by_name(this.handle, '.rodata');
    if (!map) throw new Error('The BPF object has no .rodata section: rebuild it with `npm run build:bpf`.');
    const size = lib.bpf_map__value_size(map) as number;
    const sizeOut = Buffer.alloc(8);
    const cur = checkPtr('bpf_map__initial_value(.rodata)', lib.bpf_map__initial_value(map, sizeOut));
    const data = Buffer.from(koffi.view(cur, size).slice(0));
    patch(new DataView(data.buffer, data.byteOffset, data.byteLength));
    checkInt('bpf_map__set_initial_value(.rodata)', lib.bpf_map__set_initial_value(map, data, size) as number);
  }

  load(): void {
    takeLibbpfLog();
    // signals held: a pending one makes the verifier give up (libbpf.ts: withSignalsHeld)
    checkInt(`bpf_object__load(${this.path})`, withSignalsHeld(() => libbpf().bpf_object__load(this.handle) as number));
    this.loaded = true;
  }

  /** Attaches one program by its section's default (tp_btf, tracepoint, …); the link is owned here. */
  attach(prog: BpfProgram): Ptr {
    const link = checkPtr(`attach ${prog.name} (${prog.section})`, libbpf().bpf_program__attach(prog.handle));
    this.links.push(link);
    return link;
  }

  /** Attaches a program to a cgroup; returns its link, which detach() can release early. */
  attachCgroup(prog: BpfProgram, cgroupFd: number): Ptr {
    const link = checkPtr(
      `attach ${prog.name} (${prog.section}) to a cgroup`,
      libbpf().bpf_program__attach_cgroup(prog.handle, cgroupFd),
    );
    this.links.push(link);
    return link;
  }

  /** Releases one link made by attach() or attachCgroup() before the object closes. */
  detach(link: Ptr): void {
    const i = this.links.indexOf(link);
    if (i < 0) return;
    this.links.splice(i, 1);
    libbpf().bpf_link__destroy(link);
  }

  /** Releases something (a ring buffer) together with this object, before its maps go away. */
  own(resource: Closable): void {
    this.owned.push(resource);
  }

  get attachedCount(): number {
    return this.links.length;
  }

  close(): void {
    if (this.obj === null) return;
    const lib = libbpf();
    // every step runs even when one before it throws (a ring buffer's munmap): the links and the
    // object are released all the same, and the first error is thrown after
    let first: unknown = null;
    const step = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        first ??= err;
      }
    };
    for (const r of this.owned.splice(0).reverse()) step(() => r.close());
    for (const link of this.links.splice(0)) step(() => lib.bpf_link__destroy(link));
    step(() => lib.bpf_object__close(this.obj));
    this.obj = null;
    if (first !== null) throw first;
  }
}

export { BpfError, strerror };
