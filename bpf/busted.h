/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * busted kernel/user ABI. Shared by bpf/busted.bpf.c and decoded by src/bpf/abi.ts;
 * test/unit/abi.test.ts checks every size and offset below against the TypeScript side.
 * Fixed-width types only, explicit padding, `kind` first in every ring-buffer record.
 */
#ifndef BUSTED_H
#define BUSTED_H

#define BUSTED_COMM_LEN 16

/* Load-time configuration: the object's only .rodata variable (`cfg`), set between open and load. */
#define BUSTED_MODEL_PORTS 16

struct busted_config {
	__u32 self_tgid;      /* busted's own sockets are not reported */
	__u16 udp_port;       /* connected UDP sockets to this port are flows (QUIC); 0 = none */
	__u8 sample_payload;  /* ClientHello and DNS samples on (1) or off (0) */
	/* BUSTED_QUIET_*: what becomes of a TCP connection that cannot be LLM traffic as far as the
	 * kernel can tell (see worth_reporting and judged_at_connect in busted.bpf.c), unless its
	 * first payload starts a TLS handshake (then its CONNECT goes out before the ClientHello
	 * sample, for user space to judge) */
	__u8 quiet;
	__u16 model_ports[BUSTED_MODEL_PORTS]; /* ports of local model servers (catalog); 0 = unused */
};

#define BUSTED_QUIET_OFF 0   /* the kernel judges nothing: every connection announced at its first use */
#define BUSTED_QUIET_COUNT 1 /* LLM flows only (busted without --all): kept back whole, only counted
			      * in BUSTED_STAT_QUIET / BUSTED_STAT_QUIET_FAILED */
#define BUSTED_QUIET_LATE 2  /* busted --all: reported late, at its close as one BUSTED_EV_BRIEF record,
			      * or by the idle iterator once it is older than idle_min_age */

/* Ring-buffer record kinds. */
enum busted_kind {
	BUSTED_EV_CONNECT = 1, /* outbound TCP connection established (announced at its first send or receive) */
	BUSTED_EV_FAIL = 2,    /* outbound TCP connect failed or was abandoned */
	BUSTED_EV_CLOSE = 3,   /* tracked TCP connection closed, or UDP socket released */
	BUSTED_EV_PAYLOAD = 4, /* a bounded sample of packet payload (ClientHello, DNS answer) */
	BUSTED_EV_POLICY = 5,  /* a policy decision on a connect (or UDP send) to an LLM address */
	BUSTED_EV_EXEC = 6,    /* a process exec'd (only while a policy has sha256 rules) */
	BUSTED_EV_BRIEF = 7,   /* BUSTED_QUIET_LATE: a connection kept back until its close, reported
				* whole: a CONNECT (owner, addresses, connect_ns) and its CLOSE (ts_ns, tx, rx) */
};

/* ---- enforcement ---- */

#define BUSTED_MAX_RULES 64   /* rules per bank; the `rules` array holds two banks */
#define BUSTED_RULE_ITEMS 8   /* values per field of one rule (any of them matches) */

enum busted_action {
	BUSTED_ACT_NONE = 0,  /* no decision (a toggle that was cleared, a rule slot unused) */
	BUSTED_ACT_ALLOW = 1,
	BUSTED_ACT_AUDIT = 2,
	BUSTED_ACT_BLOCK = 3,
};

/* Which fields a rule matches on (all present must match). */
enum busted_rule_field {
	BUSTED_RF_EXE = 1 << 0,     /* executable (dev, inode) */
	BUSTED_RF_UID = 1 << 1,
	BUSTED_RF_COMM = 1 << 2,
	BUSTED_RF_CGROUP = 1 << 3,  /* ancestor cgroup (id at a level) */
	BUSTED_RF_HASH = 1 << 4,    /* executable whose SHA-256 matched: `hashed_exes` has this rule's bit */
	BUSTED_RF_NEVER = 1 << 5,   /* needs user space (agent): never matches in the kernel */
};

/* Rule numbers in policy records besides 0..BUSTED_MAX_RULES-1. */
#define BUSTED_RULE_DEFAULT 0xffff /* the policy's default */
#define BUSTED_RULE_TOGGLE 0xfffe  /* a per-process toggle (busted-top) */

struct busted_exe_id {
	__u32 dev;        /* kernel dev_t */
	__u32 _pad0;
	__u64 ino;
};

struct busted_cgroup_ref {
	__u64 id;         /* cgroup id (inode of its cgroup v2 directory) */
	__u32 level;      /* its depth below the root */
	__u32 _pad0;
};

/* One compiled rule (array `rules`, index bank * BUSTED_MAX_RULES + i). 440 bytes. */
struct busted_rule {
	__u32 fields;     /* enum busted_rule_field bits */
	__u8 action;      /* enum busted_action */
	__u8 n_exe;
	__u8 n_uid;
	__u8 n_comm;
	__u8 n_cgroup;
	__u8 _pad0[7];
	__u64 providers;  /* bit i: catalog provider i; 0 = any provider */
	struct busted_exe_id exe[BUSTED_RULE_ITEMS];
	__u32 uid[BUSTED_RULE_ITEMS];
	char comm[BUSTED_RULE_ITEMS][BUSTED_COMM_LEN];
	struct busted_cgroup_ref cgroup[BUSTED_RULE_ITEMS];
};

/* The `policy` array's one value: which bank is live and what applies. 16 bytes. */
struct busted_policy {
	__u32 bank;       /* 0 or 1 */
	__u32 nrules;
	__u8 default_action; /* for LLM traffic no rule matches */
	__u8 enforce;     /* 0: every block is an audit ("would deny") */
	__u8 active;      /* 0: no policy and no toggles: connects are not checked */
	__u8 cut;         /* 1: `cut_socks` has entries: cgroup_skb drops their packets */
	__u32 hash_exec;  /* 1: sha256 rules exist: every exec is reported (BUSTED_EV_EXEC) for hashing */
};

/* An exec, for hashing the new executable before its first connect. 32 bytes. */
struct busted_exec_event {
	__u32 kind;       /* BUSTED_EV_EXEC */
	__u32 tgid;
	__u64 start_ns;
	struct busted_exe_id exe;
};

/* Key of `proc_verdicts` (toggles from busted-top): a process identity. 16 bytes. */
struct busted_proc_key {
	__u32 tgid;
	__u32 _pad0;
	__u64 start_ticks; /* start_boottime in USER_HZ ticks, as /proc/PID/stat field 22 */
};

/* LPM trie keys of LLM destinations (value: catalog provider index, __u32). */
struct busted_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct busted_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* A policy decision. 104 bytes. */
struct busted_policy_event {
	__u32 kind;       /* BUSTED_EV_POLICY */
	__u16 family;
	__u16 proto;
	__u64 ts_ns;
	__u32 tgid;
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__u64 start_ns;
	__u64 cgroup_id;
	__u8 daddr[16];
	__u16 dport;
	__u8 action;      /* the rule's action: BUSTED_ACT_AUDIT or BUSTED_ACT_BLOCK */
	__u8 denied;      /* 1 when the connect was refused (block under --enforce) */
	__u16 rule;       /* rule index, BUSTED_RULE_DEFAULT or BUSTED_RULE_TOGGLE */
	__u16 bank;       /* the rule bank it was decided by (`rule` names a rule of that bank's policy) */
	__u32 provider;   /* catalog provider index */
	__u32 _pad1;
	char comm[BUSTED_COMM_LEN];
	__u64 _pad2;
};

/* What a BUSTED_EV_PAYLOAD sample holds. */
enum busted_payload_what {
	BUSTED_PL_TLS = 1, /* first bytes of an outbound TCP stream that starts a TLS handshake, or the
	                    * request line of an HTTP CONNECT request (a proxy tunnel) it starts with */
	BUSTED_PL_DNS = 2, /* a DNS message read from port 53 (UDP; over TCP, one read: with or
			    * without its 2-byte length, as the reader asked for it) */
};

#define BUSTED_PAYLOAD_MAX 1024 /* bytes per sample */
#define BUSTED_PAYLOAD_CHUNKS 4 /* samples per send at most; ClientHellos up to 4 KiB */
#define BUSTED_HELLO_MAX 4096   /* stream bytes sampled per flow at most */
#define BUSTED_CONNECT_MAX 512  /* bytes of an HTTP CONNECT request sampled at most (its request line only) */

#define BUSTED_TCP_STATES 16 /* TCP state numbers the census tells apart (BUSTED_STAT_UNSEEN_LAST) */

/* Indexes of the per-CPU `stats` array. */
enum busted_stat {
	BUSTED_STAT_LOST = 0,      /* ring-buffer records that could not be reserved (a BRIEF counts 2) */
	BUSTED_STAT_UNTRACKED = 1, /* connects not tracked because `sockets` (or the counters) was full */
	BUSTED_STAT_OVERFLOW = 2,  /* sockets whose counters went to the `traffic` hash: no free slot
				    * among their BUSTED_SLOT_PROBES candidates (incremented after the insert) */
	BUSTED_STAT_QUIET = 3,     /* config.quiet: connections closed without being reported */
	BUSTED_STAT_QUIET_FAILED = 4, /* config.quiet: failed connects not reported */
	BUSTED_STAT_UNSEEN = 5,    /* tracked TCP sockets the census found gone, whose end no hook saw:
				    * finished by it (a CLOSE with BUSTED_END_UNSEEN where reported) */
	BUSTED_STAT_UNSEEN_LAST = 6, /* + s (s < BUSTED_TCP_STATES): of those, the ones the census last
				      * met in TCP state s (kernel numbering; 0: none met them) */
	BUSTED_STAT_MAX = 6 + BUSTED_TCP_STATES,
};

/* Who owned a socket when it connected (captured in process context). 64 bytes. */
struct busted_owner {
	__u32 tgid;
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__u64 cgroup_id;
	__u64 start_ns;   /* group leader's start_boottime, ns since boot */
	__u64 exe_ino;    /* inode of mm->exe_file, 0 when unknown */
	__u32 exe_dev;    /* s_dev of that inode's superblock */
	__u32 ppid;       /* tgid of the real parent */
	char comm[BUSTED_COMM_LEN];
};

/* A tracked socket's owner: in `slot_socks` beside its slot, or in the `sockets` hash (keyed by
 * cookie) for a socket whose counters overflowed to `traffic`. 88 bytes. */
struct busted_sock {
	struct busted_owner owner;
	__u64 connect_ns; /* bpf_ktime_get_ns() at connect() (the connect hook; without it, when SYN_SENT was entered) */
	__u16 proto;      /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 hello_need; /* a ClientHello record longer than the stream's first send: the stream
			   * bytes to sample (at most BUSTED_HELLO_MAX), until they are; else 0 */
	__u32 netns;      /* inode of the owner's network namespace at connect() (the census) */
	__u64 tx_base;    /* TCP: tx_tag(cookie) << 32 | the socket's write_seq before its first byte
			   * (set at its first counted send); unset (0, or another cookie's tag: a
			   * stale hook of the slot's previous socket) until then */
};

/* A TCP send of at least BUSTED_BULK_SEND bytes, past the stream's first BUSTED_HELLO_MAX, is
 * counted by the program only when it crosses a 2^BUSTED_BULK_SHIFT boundary of write_seq; the
 * others are counted by the next send, receive or end that reads the socket (count_bytes). A
 * constant: a value read from .rodata costs the send hook a cache line. */
#define BUSTED_BULK_SEND 32768
#define BUSTED_BULK_SHIFT 22 /* 4 MiB */

#define BUSTED_PATH_MAX 248

/*
 * The `execs` array: the file each process last exec'd, in slot tgid & (BUSTED_EXEC_SLOTS - 1).
 * A plain array, not a hash: an exec writes its slot in place, with no lock, no allocation and
 * nothing to clean up; an exec whose tgid lands in the same slot overwrites it (tgids are handed
 * out in order, so a slot lasts BUSTED_EXEC_SLOTS newer pids, threads included, however recently
 * it was read). `seq` is odd while the slot is written (a writer takes it by compare-and-swap
 * from even to odd, and leaves it by an exchange to the next even value; an exec that finds the
 * slot being written is not recorded): a reader copies the slot, checks that `seq` is even and
 * `tgid` and `start_ns` are the process's, and that a second copy is the same byte for byte. The
 * path is a hint: user space checks it against the process's executable inode.
 */
#define BUSTED_EXEC_SLOTS 8192
struct busted_exec {
	__u32 tgid;
	__u32 _pad0;
	__u64 seq;        /* odd while the slot is written (64 bits: BPF's compare-and-swap size) */
	__u64 start_ns;   /* the process's start_boottime, to tell a reused tgid */
	char path[BUSTED_PATH_MAX]; /* as given to execve (after #! rewriting); may be relative */
};

/* The `dns_sync` array (two __u64): [BUSTED_DNS_SEEN] is the time (bpf_ktime_get_ns) of the
 * newest DNS answer sampled, written by the kernel; [BUSTED_DNS_APPLIED] the time of the newest
 * one user space has applied (addresses it names entered in llm_v4/llm_v6), written by user space.
 * While SEEN > APPLIED, a connect may go to an address user space has yet to learn: config.quiet
 * then reports every connection. */
#define BUSTED_DNS_SEEN 0
#define BUSTED_DNS_APPLIED 1

/* busted_traffic.announced: NO -> YES (CONNECT emitted), or NO -> QUIET (config.quiet: not
 * reported) and later QUIET -> YES if the flow turns out to start a TLS handshake.
 * config.quiet also judges a TCP connect by its destination at the connect hook: one that cannot
 * be LLM traffic starts KEPT (kept back, not used yet) instead of NO, and its first send or
 * receive makes it QUIET (or YES, a TLS handshake) without being judged again. A KEPT socket
 * that ends was never used: a failed connect if it never connected. Under BUSTED_QUIET_LATE a
 * QUIET or KEPT socket also goes to YES when the idle iterator finds it old enough; one that
 * closes before is reported then, whole (BUSTED_EV_BRIEF). The hook that ends a socket sets DONE
 * by an exchange, so no compare-and-swap racing its end announces it afterwards. */
#define BUSTED_ANNOUNCED_NO 0
#define BUSTED_ANNOUNCED_YES 1
#define BUSTED_ANNOUNCED_QUIET 2
#define BUSTED_ANNOUNCED_KEPT 3
#define BUSTED_ANNOUNCED_DONE 4 /* set by the hook that ends it (an exchange): announced no more */

/* A tracked socket's counters. Counters only grow. 24 bytes. */
struct busted_traffic {
	__u64 tx;
	__u64 rx;
	__u64 announced;  /* BUSTED_ANNOUNCED_* (each change by a 64-bit compare-and-swap) */
};

/*
 * The `traffic_slots` array (BPF_F_MMAPABLE, BUSTED_SLOTS entries) holds the counters of tracked
 * sockets; user space maps it read-only and scans it without a syscall. Beside it, `slot_socks`
 * (same index, kernel only) holds each socket's owner. A socket's slot is one of the
 * BUSTED_SLOT_PROBES consecutive slots (wrapping) from cookie mod BUSTED_SLOTS: consecutive
 * sockets take neighbouring slots, so a connection's hooks find them in memory the previous
 * connections just touched (each CPU hands out cookies from its own batch of 4,096, so there are
 * as many such neighbourhoods as CPUs making connections, up to BUSTED_SLOTS / 4,096 = 16; with
 * more CPUs, batches share slots and the probes meet more taken ones). A socket that finds none of them free keeps its counters in the small
 * `traffic` hash (keyed by cookie, value struct busted_traffic) and its owner in the `sockets`
 * hash, and is counted in BUSTED_STAT_OVERFLOW.
 *
 * Life of a slot (readers must never see one cookie's counters go backwards):
 *   free:   cookie == 0.
 *   claim:  compare-and-swap 0 -> BUSTED_SLOT_BUSY (this writer owns it; it matches no socket),
 *           zero the counters, write the owner, then exchange BUSY -> cookie (publishes them).
 *   finish: the hook that ends the socket swaps cookie -> BUSY (only one can), reads the owner
 *           and final counters into its record, then exchanges BUSY -> 0. The counters keep their
 *           last values until the next claim zeroes them behind BUSY.
 * A reader reads cookie, tx, rx, then cookie again and takes the counters only when both reads
 * give the same cookie (neither 0 nor BUSY): the counters read between them are that socket's.
 * A cookie comes back only when its socket connects again after its flow ended (a TCP connect
 * that failed, or connect(AF_UNSPEC), then connect): a new flow with the same id, counted from 0.
 * Not prevented (as with the hash's reused elements before): a hook that found a socket's slot
 * while another CPU finishes that socket, and that acts on it without taking it, may act on the
 * next socket to claim the slot: add to its counters (which still only grow), set its
 * `announced` (a CONNECT for the old cookie carrying the new owner, the new one's not sent), or
 * set its `hello_need` (ClientHello samples of the new one's sends past its first). The slot must be freed and claimed again
 * within those nanoseconds. 32 bytes.
 */
/* Sizes: cookies are handed out to every socket that asks (busted asks at connect), so the slots
 * fill in order and wrap every BUSTED_SLOTS cookies. A socket still open when the cookies come
 * round again keeps its slot; only a run of more than BUSTED_SLOT_PROBES - 1 such neighbours (a
 * pool opened at once and kept) sends the new sockets landing on it to the overflow hashes, for
 * as long as the run stays open: a pool of L such sockets sends L - 3 of every 65,536 new ones
 * there, each for its own lifetime. A new socket goes untracked (BUSTED_STAT_UNTRACKED) when its
 * candidates are taken and the overflow hashes are full. */
#define BUSTED_SLOTS_SHIFT 16
#define BUSTED_SLOTS (1 << BUSTED_SLOTS_SHIFT)
#define BUSTED_SLOT_PROBES 4                   /* candidate slots per cookie */
#define BUSTED_OVERFLOW_MAX 16384              /* entries of the `traffic` hash */
#define BUSTED_SLOT_BUSY 0xffffffffffffffffULL /* being claimed; never a socket's cookie */

struct busted_slot {
	__u64 cookie;     /* owner's socket cookie; 0 = free, BUSTED_SLOT_BUSY = being claimed */
	struct busted_traffic counters;
};

/*
 * The census: a second witness of a TCP connection's end. Now and then user space runs the
 * busted_census iterator over the TCP sockets of each network namespace that owns tracked
 * sockets (generation `gen`; `census_ns` says which namespaces were walked in it), then once
 * more in its own with `finish` set. Every tracked socket the walks meet has its slot's entry in
 * `census` stamped with the generation; the last walk's end then looks at every slot: a TCP
 * socket tracked before the census began, whose namespace was walked, that none of the walks met
 * (no longer in the kernel's TCP tables: it has ended, or is a closed socket its owner still
 * holds) misses once; two censuses in a row and it is finished with a CLOSE whose error is
 * BUSTED_END_UNSEEN (one never announced is not reported); each is counted in BUSTED_STAT_UNSEEN,
 * and in BUSTED_STAT_UNSEEN_LAST + the TCP state it was last met in (0: never met). Its release or close
 * would have done that: this catches the rare socket whose end no hook saw (bench/README.md).
 */
struct busted_census_slot {
	__u64 cookie;     /* the socket this entry is about; another: the slot was claimed again */
	__u32 seen;       /* generation of the last census that met it */
	__u16 missed;     /* censuses in a row that did not */
	__u8 state;       /* the TCP state it was last met in (0: never met) */
	__u8 _pad0;
};

struct busted_census_cfg {
	__u64 start_ns;   /* bpf_ktime_get_ns() when this census began */
	__u32 gen;        /* its generation (from 1) */
	__u32 finish;     /* 1 during the last walk: its end judges every slot */
};

#define BUSTED_CENSUS_MISSES 2          /* censuses in a row that must miss a socket */
#define BUSTED_CENSUS_NETNS_MAX 1024    /* namespaces one census can walk */
#define BUSTED_END_UNSEEN (-1)          /* busted_event.error of a CLOSE the census made */

/* The one ring-buffer record. 152 bytes. */
struct busted_event {
	__u32 kind;       /* enum busted_kind */
	__u16 family;     /* AF_INET or AF_INET6 */
	__u16 proto;      /* IPPROTO_TCP or IPPROTO_UDP */
	__u64 cookie;     /* socket cookie: the flow id */
	__u64 ts_ns;      /* bpf_ktime_get_ns() of the event */
	struct busted_owner owner;
	/* addresses and ports: CONNECT and FAIL; a CLOSE may carry zeros (family 0) */
	__u8 saddr[16];   /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;      /* host byte order */
	__u16 dport;      /* host byte order */
	__s32 error;      /* BUSTED_EV_FAIL: positive errno from sk_err, 0 if none; a CLOSE:
			   * 0, or BUSTED_END_UNSEEN when the census ended it */
	__u64 connect_ns; /* at connect() */
	__u64 tx;         /* BUSTED_EV_CLOSE, BRIEF: total bytes sent */
	__u64 rx;         /* BUSTED_EV_CLOSE, BRIEF: total bytes received */
};

/* A payload sample. 1104 bytes. */
struct busted_payload {
	__u32 kind;       /* BUSTED_EV_PAYLOAD */
	__u16 family;     /* AF_INET or AF_INET6 */
	__u8 what;        /* enum busted_payload_what */
	__u8 proto;       /* IPPROTO_TCP or IPPROTO_UDP */
	__u64 cookie;     /* socket cookie of the sending (TLS) or receiving (DNS) socket */
	__u64 ts_ns;
	__u32 offset;     /* TLS: stream offset of data[0] from the first payload byte; DNS: 0 */
	__u32 len;        /* valid bytes in data */
	__u32 total;      /* bytes the send or read moved (the sample holds the first of them) */
	__u32 _pad0;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;      /* host byte order */
	__u16 dport;
	__u32 _pad1;
	__u8 data[BUSTED_PAYLOAD_MAX];
};

#endif /* BUSTED_H */
