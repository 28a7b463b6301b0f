/**
 * koffi bindings to libbpf.so.1: one table of every native function with its exact C signature,
 * one loader whose error names every path it tried, and typed errors carrying the errno name and
 * libbpf's own message. Pointers to libbpf objects are opaque handles; their owners (object.ts)
 * pair every open with a close, as do the owners of mmap'd areas (ringbuf.ts, kstats.ts).
 */
import koffi, { type LibraryHandle, type KoffiFunc } from 'koffi';
import { constants as osConstants } from 'node:os';

export type Ptr = unknown; // an opaque native pointer (koffi External); never dereferenced here

/** BUSTED_LIBBPF, when set, is the only path tried. */
const LIBBPF_CANDIDATES = process.env.BUSTED_LIBBPF ? [process.env.BUSTED_LIBBPF] : [
  'libbpf.so.1',
  '/usr/lib/x86_64-linux-gnu/libbpf.so.1',
  '/usr/lib/aarch64-linux-gnu/libbpf.so.1',
  '/usr/lib64/libbpf.so.1',
  '/usr/lib/libbpf.so.1',
];

/** errno number → name (ENOENT, EPERM, …). */
const ERRNO_NAMES = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, num]) => [num, name]),
);

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

export class LibbpfMissingError extends Error {
  constructor(readonly tried: string[], readonly reasons: string[]) {
    super(
      `busted needs libbpf.so.1 and could not load it (tried ${tried.join(', ')}): ` +
        'install it with `apt-get install -y libbpf1` or set BUSTED_LIBBPF to its path.',
    );
    this.name = 'LibbpfMissingError';
  }
}

/** A failed libbpf or bpf(2) call: which call, the errno name and libbpf's words for it. */
export class BpfError extends Error {
  constructor(
    readonly op: string,
    readonly errno: number,
    readonly libbpfMessage: string,
    readonly log: string[] = [],
  ) {
    super(`${op} failed: ${errnoName(errno)} (${libbpfMessage})`);
    this.name = 'BpfError';
  }

  get code(): string {
    return errnoName(this.errno);
  }
}

function loadLibrary(): LibraryHandle {
  const reasons: string[] = [];
  for (const path of LIBBPF_CANDIDATES) {
    try {
      return koffi.load(path);
    } catch (err) {
      reasons.push(`${path}: ${(err as Error).message}`);
    }
  }
  throw new LibbpfMissingError(LIBBPF_CANDIDATES, reasons);
}

// Prototype used as a callback type.
const LibbpfPrintFn = koffi.proto('int busted_libbpf_print_fn(int level, const char *fmt, void *args)');

function bindAll(lib: LibraryHandle) {
  return {
    // bpf_object lifecycle
    bpf_object__open_file: lib.func('void *bpf_object__open_file(const char *path, const void *opts)'),
    bpf_object__load: lib.func('int bpf_object__load(void *obj)'),
    bpf_object__close: lib.func('void bpf_object__close(void *obj)'),
    bpf_object__find_map_by_name: lib.func('void *bpf_object__find_map_by_name(const void *obj, const char *name)'),
    bpf_object__find_program_by_name: lib.func('void *bpf_object__find_program_by_name(const void *obj, const char *name)'),
    bpf_object__next_program: lib.func('void *bpf_object__next_program(const void *obj, void *prev)'),
    bpf_program__name: lib.func('const char *bpf_program__name(const void *prog)'),
    bpf_program__section_name: lib.func('const char *bpf_program__section_name(const void *prog)'),
    bpf_program__set_autoload: lib.func('int bpf_program__set_autoload(void *prog, bool autoload)'),
    bpf_program__fd: lib.func('int bpf_program__fd(const void *prog)'),
    bpf_program__attach: lib.func('void *bpf_program__attach(const void *prog)'),
    bpf_program__attach_cgroup: lib.func('void *bpf_program__attach_cgroup(const void *prog, int cgroup_fd)'),
    bpf_link__destroy: lib.func('int bpf_link__destroy(void *link)'),
    bpf_link__fd: lib.func('int bpf_link__fd(const void *link)'),
    bpf_iter_create: lib.func('int bpf_iter_create(int link_fd)'),
    // maps
    bpf_map__fd: lib.func('int bpf_map__fd(const void *map)'),
    bpf_map__initial_value: lib.func('void *bpf_map__initial_value(void *map, void *psize)'),
    bpf_map__set_initial_value: lib.func('int bpf_map__set_initial_value(void *map, const void *data, size_t size)'),
    bpf_map__value_size: lib.func('uint32_t bpf_map__value_size(const void *map)'),
    bpf_map__key_size: lib.func('uint32_t bpf_map__key_size(const void *map)'),
    bpf_map__type: lib.func('int bpf_map__type(const void *map)'),
    bpf_map__max_entries: lib.func('uint32_t bpf_map__max_entries(const void *map)'),
    bpf_map__set_max_entries: lib.func('int bpf_map__set_max_entries(void *map, uint32_t max_entries)'),
    bpf_map_lookup_elem: lib.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    bpf_map_delete_elem: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_update_elem: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    bpf_map_get_next_key: lib.func('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
    bpf_map_lookup_batch: lib.func(
      'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, const void *opts)',
    ),
    bpf_prog_get_fd_by_id: lib.func('int bpf_prog_get_fd_by_id(uint32_t id)'),
    bpf_link_get_fd_by_id: lib.func('int bpf_link_get_fd_by_id(uint32_t id)'),
    bpf_map_get_fd_by_id: lib.func('int bpf_map_get_fd_by_id(uint32_t id)'),
    // library
    libbpf_num_possible_cpus: lib.func('int libbpf_num_possible_cpus(void)'),
    libbpf_strerror: lib.func('int libbpf_strerror(int err, _Out_ char *buf, size_t size)'),
    libbpf_set_print: lib.func('void *libbpf_set_print(busted_libbpf_print_fn *fn)'),
    libbpf_major_version: lib.func('uint32_t libbpf_major_version(void)'),
    libbpf_minor_version: lib.func('uint32_t libbpf_minor_version(void)'),
  };
}

export type Libbpf = ReturnType<typeof bindAll>;

/**
 * The few libc functions busted calls itself (the ring buffer's positions are read through mmap;
 * malloc_trim gives the C heap's free pages back after a burst; pthread_sigmask holds signals
 * back while the verifier runs; setns makes an iterator over another network namespace's sockets).
 */
function bindLibc(lib: LibraryHandle) {
  return {
    vsnprintf: lib.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *ap)'),
    mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, intptr_t offset)'),
    munmap: lib.func('int munmap(void *addr, size_t length)'),
    getpagesize: lib.func('int getpagesize(void)'),
    malloc_trim: lib.func('int malloc_trim(size_t pad)'),
    pthread_sigmask: lib.func('int pthread_sigmask(int how, const uint8_t *set, _Out_ uint8_t *oldset)'),
    setns: lib.func('int setns(int fd, int nstype)'),
  };
}

export type Libc = ReturnType<typeof bindLibc>;

let boundLibc: Libc | null = null;

const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
/** sizeof(sigset_t) in glibc: 1024 bits. */
const SIGSET_BYTES = 128;

/**
 * Runs `fn` with every signal held back from this thread, then lets them in. The verifier gives
 * up on a program with EAGAIN when a signal is pending (a profiler's timer, a terminal resize, a
 * child's exit), and a load takes long enough for a steady stream of them to fail every retry.
 * A signal sent meanwhile is delivered when `fn` returns (SIGKILL and SIGSTOP are never held).
 */
export function withSignalsHeld<T>(fn: () => T): T {
  const all = Buffer.alloc(SIGSET_BYTES, 0xff);
  const old = Buffer.alloc(SIGSET_BYTES);
  const held = (libc().pthread_sigmask(SIG_BLOCK, all, old) as number) === 0;
  try {
    return fn();
  } finally {
    if (held) libc().pthread_sigmask(SIG_SETMASK, old, null);
  }
}

/** libc.so.6, bound on first use. */
export function libc(): Libc {
  boundLibc ??= bindLibc(koffi.load('libc.so.6'));
  return boundLibc;
}

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
/** mmap's MAP_FAILED, ((void *)-1), as koffi.address() gives it. */
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

function mmapShared(op: string, prot: number, fd: number, length: number, offset: number): Ptr {
  const addr = libc().mmap(null, length, prot, MAP_SHARED, fd, offset);
  if (addr === null || koffi.address(addr) === MAP_FAILED) {
    const errno = koffi.errno() || osConstants.errno.EINVAL;
    throw new BpfError(op, errno, strerror(errno));
  }
  return addr;
}

/** Maps `length` bytes of `fd` read-only and shared; throws BpfError with errno on failure. */
export function mmapReadOnly(op: string, fd: number, length: number, offset = 0): Ptr {
  return mmapShared(op, PROT_READ, fd, length, offset);
}

/** Maps `length` bytes of `fd` readable, writable and shared; throws BpfError with errno on failure. */
export function mmapReadWrite(op: string, fd: number, length: number, offset = 0): Ptr {
  return mmapShared(op, PROT_READ | PROT_WRITE, fd, length, offset);
}

export function munmap(op: string, addr: Ptr, length: number): void {
  if ((libc().munmap(addr, length) as number) < 0) {
    const errno = koffi.errno() || osConstants.errno.EINVAL;
    throw new BpfError(op, errno, strerror(errno));
  }
}

/** enum libbpf_print_level: LIBBPF_WARN 0, LIBBPF_INFO 1, LIBBPF_DEBUG 2 */
const LIBBPF_DEBUG = 2;

let bound: { lib: Libbpf; vsnprintf: KoffiFunc<(...args: any[]) => any> } | null = null;
/** libbpf's recent log lines (warnings, verifier output), for error messages. */
const logLines: string[] = [];
const LOG_KEEP = 200;

function onLibbpfPrint(vsnprintf: KoffiFunc<(...args: any[]) => any>) {
  const buf = Buffer.alloc(1 << 20); // verifier logs arrive as one long message
  const debug = Boolean(process.env.BUSTED_LIBBPF_DEBUG);
  return (level: number, fmt: string, args: Ptr): number => {
    if (level >= LIBBPF_DEBUG && !debug) return 0; // hundreds of CO-RE lines per load: not worth formatting
    const n = vsnprintf(buf, buf.length, fmt, args) as number;
    const text = buf.toString('utf8', 0, Math.max(0, Math.min(n, buf.length - 1)));
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      logLines.push(line);
      if (logLines.length > LOG_KEEP) logLines.shift();
      if (process.env.BUSTED_LIBBPF_DEBUG) process.stderr.write(`libbpf[${level}]: ${line}\n`);
    }
    return 0;
  };
}

/** The bound library; loads libbpf.so.1 on first use. Throws LibbpfMissingError. */
export function libbpf(): Libbpf {
  if (bound) return bound.lib;
  const handle = loadLibrary();
  const lib = bindAll(handle);
  // va_list is passed as a pointer on x86-64 and arm64 System V ABIs
  const vsnprintf = libc().vsnprintf;
  const printCb = koffi.register(onLibbpfPrint(vsnprintf), koffi.pointer(LibbpfPrintFn));
  lib.libbpf_set_print(printCb);
  bound = { lib, vsnprintf };
  return lib;
}

export function libbpfVersion(): string {
  const lib = libbpf();
  return `${lib.libbpf_major_version()}.${lib.libbpf_minor_version()}`;
}

/** Takes and clears libbpf's log lines collected since the last call. */
export function takeLibbpfLog(): string[] {
  return logLines.splice(0, logLines.length);
}

export function strerror(err: number): string {
  const buf = Buffer.alloc(256);
  libbpf().libbpf_strerror(-Math.abs(err), buf, buf.length);
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}

/** Checks an int return (libbpf 1.x: negative errno on failure). */
export function checkInt(op: string, ret: number): number {
  if (ret < 0) throw new BpfError(op, -ret, strerror(ret), takeLibbpfLog());
  return ret;
}

/** Checks a pointer return (libbpf 1.x: NULL and errno set on failure). */
export function checkPtr(op: string, ptr: Ptr): Ptr {
  if (ptr === null || ptr === undefined) {
    const errno = koffi.errno() || osConstants.errno.EINVAL;
    throw new BpfError(op, errno, strerror(errno), takeLibbpfLog());
  }
  return ptr;
}
