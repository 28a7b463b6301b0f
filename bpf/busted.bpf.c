// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * busted: per-socket lifecycle and byte counters for outbound TCP.
 *
 * Hooks (all load on kernels without kprobes/fentry):
 *   cgroup/connect4, connect6   track TCP sockets and connected UDP sockets to udp_port (QUIC):
 *                               capture the owner (process context); enforcement; without
 *                               --all, judge whether the destination could be LLM traffic.
 *   tp_btf/sock_send_length     count tx bytes of tracked sockets (a TCP socket's from its
 *                               write_seq; a bulk send between two 4 MiB boundaries is left to
 *                               the next read of the socket: tcp_sent, bulk_between); emit
 *                               CONNECT on a tracked socket's first send; sample the first bytes of a tracked TCP
 *                               stream that starts a TLS handshake (the ClientHello, for SNI)
 *                               or an HTTP CONNECT request (a proxy tunnel's target) from the
 *                               sender's buffer.
 *   tp_btf/sock_recv_length     count rx bytes of tracked sockets (and bring a TCP socket's tx up
 *                               to its write_seq); emit CONNECT on a tracked TCP
 *                               socket's first receive (a server that speaks first); sample DNS
 *                               answers from port 53 from the reader's buffer.
 *   cgroup/sock_release         emit CLOSE (or FAIL: never connected), and CONNECT first for a
 *                               connection that never moved a byte.
 *   tp_btf/inet_sk_error_report emit FAIL for a TCP connection the kernel ends on an error
 *                               (refused, timed out, reset) while its owner still holds it.
 *   iter/tcp                    run by user space: emit CONNECT for idle connections (tracked,
 *                               established, no byte moved yet); the census (busted_census):
 *                               finish a tracked socket that left the TCP tables unseen.
 *   tp_btf/inet_sock_set_state  attached only without the cgroup programs (no cgroup v2):
 *                               SYN_SENT: capture the owner; ESTABLISHED: emit CONNECT;
 *                               CLOSE: emit FAIL or CLOSE.
 *   cgroup_skb/egress, ingress  drop the packets of cut flows: attached by user space only while
 *                               a flow is cut, so no program runs per packet otherwise.
 *   cgroup/sendmsg4, sendmsg6   mark unconnected UDP sockets that send to port 53 (DNS);
 *                               enforcement of unconnected UDP.
 *   tp_btf/sched_process_exec   remember each process's executable path (the `execs` array), so
 *                               a process that exits right after connecting keeps its exe.
 * Only lifecycle records and bounded payload samples cross the ring buffer; byte counters
 * stay in `traffic_slots`, an array user space maps read-only and scans without a syscall
 * (a few sockets that find no free slot use the small `traffic` hash instead; busted.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "busted.h"

#define AF_INET 2
#define AF_INET6 10
#define MSG_PEEK 2
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define TLS_HANDSHAKE 0x16
#define DNS_PORT 53

/* TCP states (include/net/tcp_states.h); enum values are stable ABI. */
#define BUSTED_TCP_ESTABLISHED 1
#define BUSTED_TCP_SYN_SENT 2
#define BUSTED_TCP_FIN_WAIT1 4
#define BUSTED_TCP_FIN_WAIT2 5
#define BUSTED_TCP_TIME_WAIT 6
#define BUSTED_TCP_CLOSE 7
#define BUSTED_TCP_CLOSE_WAIT 8
#define BUSTED_TCP_LAST_ACK 9
#define BUSTED_TCP_CLOSING 11
#define BUSTED_TCP_NEW_SYN_RECV 12

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by user space between open and load. */
const volatile struct busted_config cfg = { .self_tgid = 0, .udp_port = 443, .sample_payload = 1, .quiet = 0 };

/* Owners of tracked sockets, beside their slots (same index): no hash on the common path. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BUSTED_SLOTS);
	__type(key, __u32);
	__type(value, struct busted_sock);
} slot_socks SEC(".maps");

/* Owners of the sockets that found no free slot (their counters are in `traffic`): normally empty. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BUSTED_OVERFLOW_MAX);
	__type(key, __u64); /* socket cookie */
	__type(value, struct busted_sock);
} sockets SEC(".maps");

/* Counters of tracked sockets, mapped by user space (busted.h: life of a slot). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BUSTED_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct busted_slot);
} traffic_slots SEC(".maps");

/* Counters of the sockets that found no free slot: normally empty. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BUSTED_OVERFLOW_MAX);
	__type(key, __u64); /* socket cookie */
	__type(value, struct busted_traffic);
} traffic SEC(".maps");

/* Newest DNS answer sampled / applied by user space (BUSTED_DNS_*; config.quiet). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} dns_sync SEC(".maps");

/* Entries in `traffic` now. While it is 0, a socket missing from its slots is not looked up in
 * the hash: untracked sockets that have a cookie pay K compares and no hash lookup. */
__u64 overflow_entries = 0;


/* Unconnected UDP sockets that sent to port 53 (cgroup/sendmsg): their reads are DNS answers. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
} dns_socks SEC(".maps");

/* Exec paths by tgid slot (busted.h: the `execs` array). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BUSTED_EXEC_SLOTS);
	__type(key, __u32); /* tgid & (BUSTED_EXEC_SLOTS - 1) */
	__type(value, struct busted_exec);
} execs SEC(".maps");

/* ---- enforcement maps (filled by user space) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct busted_lpm4);
	__type(value, __u32); /* catalog provider index */
} llm_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct busted_lpm6);
	__type(value, __u32);
} llm_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct busted_policy);
} policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * BUSTED_MAX_RULES);
	__type(key, __u32);
	__type(value, struct busted_rule);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct busted_proc_key);
	__type(value, __u8); /* enum busted_action */
} proc_verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct busted_exe_id);
	__type(value, __u64); /* bit i: rule i's sha256 matched this executable */
} hashed_exes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);  /* socket cookie of an open flow of a blocked process */
	__type(value, __u8);
} cut_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* 4 MiB: ~27k records */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BUSTED_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_add(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	/* Per-CPU slot, but not one writer at a time: a program in process context can be
	 * interrupted by a softirq running another of these programs on the same CPU, or preempted
	 * (a preemptible kernel) by a task whose program runs there. A plain `+= 1` lost an
	 * increment then; a locked add on a CPU-local line costs a few nanoseconds. */
	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline void stat_inc(__u32 idx)
{
	stat_add(idx, 1);
}

static __always_inline void fill_owner(struct busted_owner *o)
{
	/* The task is a trusted BTF pointer, and its cred and cgroups (RCU pointers) are trusted in
	 * these non-sleepable programs: every field is read directly (faulting loads), where the
	 * pid_tgid, uid_gid, cgroup_id and comm helpers cost a call each, with the return
	 * mitigations of this kind of CPU: the connect hook took 607 -> 354 ns a run by default,
	 * 541 -> 322 with --all, in the same windows (bench/README.md, session 17). */
	struct task_struct *task = bpf_get_current_task_btf();
	const struct cred *cred = task->cred;
	struct file *exe;

	o->tgid = task->tgid;
	o->tid = task->pid;
	o->uid = cred->uid.val; /* as bpf_get_current_uid_gid(): the subjective credentials */
	o->gid = cred->gid.val;
	o->cgroup_id = task->cgroups->dfl_cgrp->kn->id; /* as bpf_get_current_cgroup_id() */
	/* /proc/PID/stat field 22 is derived from the leader's start_boottime */
	o->start_ns = task->group_leader->start_boottime;
	o->ppid = task->real_parent->tgid;
	exe = task->mm ? task->mm->exe_file : NULL;
	if (exe) {
		o->exe_ino = exe->f_inode->i_ino;
		o->exe_dev = exe->f_inode->i_sb->s_dev;
	}
	/* two 8-byte loads (as bpf_get_current_comm, unlocked: a rename meanwhile may tear it) */
	__builtin_memcpy(o->comm, task->comm, sizeof(o->comm));
}

/* The network namespace (its inode) a TCP socket lives in, where the census looks for it: its
 * own, not its owner's, which may have moved since it made it. */
static __always_inline __u32 sock_netns(struct bpf_sock *sk)
{
	struct tcp_sock *tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;

	return tp ? tp->inet_conn.icsk_inet.sk.__sk_common.skc_net.net->ns.inum : 0;
}

/* Endpoints of a flow, from whichever view of the socket a hook has. */
struct addrs {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 sport;
	__u16 dport;
};

/* A TCP socket that went to CLOSE (reset, or closed for writing and done) has left its port's
 * hash, which cleared skc_num; its source port is still in inet_sport. */
static __always_inline __u16 sport_after_close(const struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
}

static __always_inline void addrs_from_sk(struct addrs *a, const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	__builtin_memset(a, 0, sizeof(*a));
	a->family = family;
	a->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!a->sport)
		a->sport = sport_after_close(sk);
	a->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET6) {
		/* BPF_CORE_READ_INTO would copy sizeof(*dst) == 1 byte of an array */
		bpf_core_read(a->saddr, sizeof(a->saddr), &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(a->daddr, sizeof(a->daddr), &sk->__sk_common.skc_v6_daddr);
	} else {
		BPF_CORE_READ_INTO((__u32 *)a->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)a->daddr, sk, __sk_common.skc_daddr);
	}
}

/*
 * A socket's endpoints and state from a CGROUP_SOCK program (sock_release), which reads the
 * kernel's sock through a helper: the head of its sock_common, up to its IPv6 addresses, in one
 * call (88 bytes here) instead of one per field (six; with --all's BRIEF at every release of the
 * churn, 315 -> 249 ns a run), each field taken at its CO-RE offset. Field by field only if a
 * kernel ever moved them further.
 */
#define SKC_HEAD 128
#define skc_off(field) bpf_core_field_offset(struct sock_common, field)

static __always_inline void sk_view(struct addrs *a, __u8 *state, const struct sock *sk)
{
	__u32 len = skc_off(skc_v6_rcv_saddr) + 16;
	__u64 head[SKC_HEAD / 8];
	const __u8 *h = (const __u8 *)head;

	if (skc_off(skc_v6_daddr) + 16 > len)
		len = skc_off(skc_v6_daddr) + 16;
	if (len > SKC_HEAD || bpf_probe_read_kernel(head, len, &sk->__sk_common)) {
		addrs_from_sk(a, sk);
		*state = BPF_CORE_READ(sk, __sk_common.skc_state);
		return;
	}
	__builtin_memset(a, 0, sizeof(*a));
	a->family = *(const __u16 *)(h + skc_off(skc_family));
	a->sport = *(const __u16 *)(h + skc_off(skc_num));
	if (!a->sport)
		a->sport = sport_after_close(sk);
	a->dport = bpf_ntohs(*(const __u16 *)(h + skc_off(skc_dport)));
	*state = h[skc_off(skc_state)];
	if (a->family == AF_INET6) {
		__builtin_memcpy(a->saddr, h + skc_off(skc_v6_rcv_saddr), 16);
		__builtin_memcpy(a->daddr, h + skc_off(skc_v6_daddr), 16);
	} else {
		*(__u32 *)a->saddr = *(const __u32 *)(h + skc_off(skc_rcv_saddr));
		*(__u32 *)a->daddr = *(const __u32 *)(h + skc_off(skc_daddr));
	}
}

/* The same from a tracing program, whose BTF pointers are read directly (no helper call). */
static __always_inline void addrs_from_btf(struct addrs *a, const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;

	__builtin_memset(a, 0, sizeof(*a));
	a->family = family;
	a->sport = sk->__sk_common.skc_num;
	if (!a->sport)
		a->sport = sport_after_close(sk);
	a->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (family == AF_INET6) {
		__builtin_memcpy(a->saddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(a->daddr, &sk->__sk_common.skc_v6_daddr, 16);
	} else {
		*(__u32 *)a->saddr = sk->__sk_common.skc_rcv_saddr;
		*(__u32 *)a->daddr = sk->__sk_common.skc_daddr;
	}
}

/* First candidate slot of a cookie. Each CPU hands out cookies in order (from its own batch), so
 * the sockets a CPU starts to track take neighbouring slots: a new connection finds its slot, and
 * the owner beside it, in memory the last ones touched. Spreading them (a hash of the cookie)
 * made every connection miss the cache and the TLB on both: 300 ns more here. */
static __always_inline __u32 slot_index(__u64 cookie)
{
	return cookie & (BUSTED_SLOTS - 1);
}

/* Where a tracked socket's state is: its slot and the owner beside it, or (slot NULL) the
 * overflow hashes `traffic` and `sockets`. */
struct tracked {
	struct busted_slot *slot;
	struct busted_traffic *t;
	struct busted_sock *s;
};

/* The slot that holds this cookie's counters, if any (probes the same slots as claim_slot);
 * its index in *idx. */
static __always_inline struct busted_slot *slot_of(__u64 cookie, __u32 *idx)
{
	__u32 first = slot_index(cookie);

	for (__u32 i = 0; i < BUSTED_SLOT_PROBES; i++) {
		__u32 at = (first + i) & (BUSTED_SLOTS - 1);
		struct busted_slot *slot = bpf_map_lookup_elem(&traffic_slots, &at);

		if (slot && slot->cookie == cookie) {
			*idx = at;
			return slot;
		}
	}
	return NULL;
}

/* A tracked socket's counters and owner; 0 when found. */
static __always_inline int find(__u64 cookie, struct tracked *x)
{
	__u32 idx;

	x->slot = slot_of(cookie, &idx);
	if (x->slot) {
		x->t = &x->slot->counters;
		x->s = bpf_map_lookup_elem(&slot_socks, &idx);
		return x->s ? 0 : -1;
	}
	if (!overflow_entries)
		return -1;
	x->t = bpf_map_lookup_elem(&traffic, &cookie);
	x->s = bpf_map_lookup_elem(&sockets, &cookie);
	return x->t && x->s ? 0 : -1;
}

/* Claims a free slot for a new socket and writes its owner beside it (life of a slot: busted.h);
 * 0 on success. */
static __always_inline int claim_slot(__u64 cookie, const struct busted_sock *owner, __u64 announced)
{
	__u32 first = slot_index(cookie);

	for (__u32 i = 0; i < BUSTED_SLOT_PROBES; i++) {
		__u32 idx = (first + i) & (BUSTED_SLOTS - 1);
		struct busted_slot *slot = bpf_map_lookup_elem(&traffic_slots, &idx);
		struct busted_sock *s;

		if (!slot || slot->cookie != 0)
			continue; /* a plain read first: no locked instruction on a taken slot */
		s = bpf_map_lookup_elem(&slot_socks, &idx);
		if (!s)
			continue;
		if (__sync_val_compare_and_swap(&slot->cookie, 0, BUSTED_SLOT_BUSY) != 0)
			continue; /* claimed by another CPU meanwhile */
		/* owned (BUSY matches no socket): zeroing cannot meet a writer or fool a reader */
		slot->counters.tx = 0;
		slot->counters.rx = 0;
		slot->counters.announced = announced;
		*s = *owner;
		__sync_lock_test_and_set(&slot->cookie, cookie); /* xchg: a full barrier after the writes */
		return 0;
	}
	return -1;
}

/* Process context (connect()): remember who owns the socket; `announced`: its first state
 * (BUSTED_ANNOUNCED_NO, or KEPT: judged out at its connect). */
static __always_inline void track(__u64 cookie, __u16 proto, __u64 announced, __u32 netns)
{
	struct busted_traffic zero = { .announced = announced };
	struct busted_sock s = {};
	__u32 idx;

	/* already tracked (a UDP socket connected again: getaddrinfo tries each address so), in a
	 * slot or in the overflow hashes: tracked twice, its overflow entries would never go */
	if (slot_of(cookie, &idx) || (overflow_entries && bpf_map_lookup_elem(&sockets, &cookie)))
		return;
	fill_owner(&s.owner);
	if (cfg.self_tgid && s.owner.tgid == cfg.self_tgid)
		return;
	s.netns = netns;
	s.connect_ns = bpf_ktime_get_ns();
	s.proto = proto;
	if (claim_slot(cookie, &s, announced) == 0)
		return;
	/* no free slot among its candidates: the overflow hashes, owner first (readers find the
	 * counters first) */
	if (bpf_map_update_elem(&sockets, &cookie, &s, BPF_NOEXIST)) {
		stat_inc(BUSTED_STAT_UNTRACKED);
		return;
	}
	if (bpf_map_update_elem(&traffic, &cookie, &zero, BPF_NOEXIST)) {
		bpf_map_delete_elem(&sockets, &cookie);
		stat_inc(BUSTED_STAT_UNTRACKED);
		return;
	}
	__sync_fetch_and_add(&overflow_entries, 1);
	/* after the insert: user space reads the hash while this count differs from the one it
	 * saw before its last read found the hash empty */
	stat_inc(BUSTED_STAT_OVERFLOW);
}

/*
 * The hook that ends a tracked socket takes its entry first; 0 if another hook took it. A slot
 * goes from the cookie to BUSY: no other hook finds it, nobody can claim it, and its owner and
 * final counters stay readable until give_back() frees it. An overflow socket's owner is copied
 * to `copy` (x->s then points there) and its `sockets` entry deleted.
 */
static __always_inline int take(__u64 cookie, struct tracked *x, struct busted_sock *copy)
{
	if (x->slot)
		return __sync_val_compare_and_swap(&x->slot->cookie, cookie, BUSTED_SLOT_BUSY) == cookie;
	*copy = *x->s; /* preallocated elements are reused as soon as they are deleted */
	if (bpf_map_delete_elem(&sockets, &cookie))
		return 0;
	x->s = copy;
	return 1;
}

/* Frees what take() took. */
static __always_inline void give_back(__u64 cookie, const struct tracked *x)
{
	if (x->slot) {
		__sync_lock_test_and_set(&x->slot->cookie, 0); /* xchg: after every read of the slot */
		return;
	}
	if (bpf_map_delete_elem(&traffic, &cookie) == 0)
		__sync_fetch_and_add(&overflow_entries, -1);
}

/* A socket that turned out not to be a flow (a UDP socket that never sent) is forgotten. */
static __always_inline void untrack(__u64 cookie, struct tracked *x)
{
	struct busted_sock copy;

	if (take(cookie, x, &copy))
		give_back(cookie, x);
}

static __always_inline void fill_event(struct busted_event *e, __u64 cookie, const struct busted_sock *s,
				       __u32 kind, const struct addrs *a, __s32 error, __u64 tx, __u64 rx)
{
	e->kind = kind;
	e->family = a->family;
	e->proto = s->proto;
	e->cookie = cookie;
	e->ts_ns = bpf_ktime_get_ns();
	e->owner = s->owner;
	__builtin_memcpy(e->saddr, a->saddr, 16);
	__builtin_memcpy(e->daddr, a->daddr, 16);
	e->sport = a->sport;
	e->dport = a->dport;
	e->error = error;
	e->connect_ns = s->connect_ns;
	e->tx = tx;
	e->rx = rx;
}

static __always_inline void emit(__u64 cookie, const struct busted_sock *s, __u32 kind,
				 const struct addrs *a, __s32 error, __u64 tx, __u64 rx)
{
	struct busted_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		/* counted as the records it stands for in busted's stream: a BRIEF is a connect and a close */
		stat_add(BUSTED_STAT_LOST, kind == BUSTED_EV_BRIEF ? 2 : 1);
		return;
	}
	fill_event(e, cookie, s, kind, a, error, tx, rx);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP); /* consumed on a timer: no wakeups */
}

/* config.quiet: a local model server's port (the catalog's). */
static __always_inline int model_port(__u16 dport)
{
	for (int i = 0; i < BUSTED_MODEL_PORTS; i++) {
		if (cfg.model_ports[i] == 0)
			break;
		if (cfg.model_ports[i] == dport)
			return 1;
	}
	return 0;
}

/* config.quiet: a DNS answer was sampled that user space has not applied to llm_v4/llm_v6 yet
 * (dns_sync): until it has, any address may be one that answer made an LLM address. */
static __always_inline int dns_pending(void)
{
	__u64 *seen, *applied;
	__u32 key;

	key = BUSTED_DNS_SEEN;
	seen = bpf_map_lookup_elem(&dns_sync, &key);
	key = BUSTED_DNS_APPLIED;
	applied = bpf_map_lookup_elem(&dns_sync, &key);
	return seen && applied && *seen > *applied;
}

/*
 * config.quiet (busted without --all shows LLM flows only): whether user space could call this
 * TCP connection LLM traffic. With the cgroup programs a connect is judged first at the connect
 * hook (judged_at_connect: one judged out starts KEPT and is not judged again); one judged in
 * is judged again here when it is announced (its first send or receive) or fails. True for a local model
 * server's port, an address in llm_v4/llm_v6 (catalog ranges; addresses learned from DNS answers
 * and SNI), and while a DNS answer user space has not applied yet is about (dns_sync). Anything
 * else is kept back unless its first payload starts a TLS handshake (promote_tls), whose SNI
 * user space judges. UDP flows (QUIC to udp_port) are always reported.
 */
static __always_inline int worth_reporting(const struct busted_sock *s, const struct addrs *a)
{
	if (!cfg.quiet || s->proto != IPPROTO_TCP)
		return 1;
	if (model_port(a->dport))
		return 1;
	if (a->family == AF_INET) {
		struct busted_lpm4 k4 = { .prefixlen = 32 };

		__builtin_memcpy(k4.addr, a->daddr, 4);
		if (bpf_map_lookup_elem(&llm_v4, &k4))
			return 1;
	} else {
		struct busted_lpm6 k6 = { .prefixlen = 128 };

		__builtin_memcpy(k6.addr, a->daddr, 16);
		if (bpf_map_lookup_elem(&llm_v6, &k6))
			return 1;
	}
	return dns_pending();
}

/*
 * The CONNECT of a socket whose `announced` this hook moves from `was` (NO, or QUIET or KEPT when a
 * kept-back one is reported after all: a TLS handshake, or the idle iterator under
 * BUSTED_QUIET_LATE) to YES; nothing if another hook moved it first. Its record is reserved
 * before the compare-and-swap: a hook that then ends the socket on another CPU sees YES and
 * reserves its CLOSE after it, so the ring never holds the CLOSE first.
 */
static __always_inline void announce_from(__u64 cookie, const struct busted_sock *s,
					  struct busted_traffic *t, const struct addrs *a, __u64 was)
{
	struct busted_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (__sync_val_compare_and_swap(&t->announced, was, BUSTED_ANNOUNCED_YES) != was) {
		if (e)
			bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		return;
	}
	if (!e) {
		stat_inc(BUSTED_STAT_LOST);
		return;
	}
	fill_event(e, cookie, s, BUSTED_EV_CONNECT, a, 0, 0, 0);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/*
 * CONNECT is emitted exactly once, by the first hook that sees the connection in use: its
 * first send or receive, the idle iterator, else its release (without the cgroup programs,
 * normally the ESTABLISHED transition first). Tracing programs
 * skip runs that nest on one CPU (a softirq interrupting the same program: "recursion
 * misses"), so no single tp_btf hook may be the only witness.
 */
static __always_inline void announce(__u64 cookie, const struct busted_sock *s,
				     struct busted_traffic *t, const struct addrs *a)
{
	if (!worth_reporting(s, a)) {
		__sync_val_compare_and_swap(&t->announced, BUSTED_ANNOUNCED_NO, BUSTED_ANNOUNCED_QUIET);
		return;
	}
	announce_from(cookie, s, t, a, BUSTED_ANNOUNCED_NO);
}

/*
 * CLOSE or FAIL exactly once: only the hook that takes the socket's entry reports it, with the
 * counters as they are then (every byte its owner moved through hooks that ran before). A
 * connection kept back whole is counted (BUSTED_QUIET_COUNT) or reported now in one record,
 * BRIEF (BUSTED_QUIET_LATE: `a` then holds its addresses). 1 if this hook finished it.
 */
static __always_inline int finish(__u64 cookie, struct tracked *x, __u32 kind, const struct addrs *a, __s32 error)
{
	struct busted_sock copy;
	__u64 announced;

	if (!take(cookie, x, &copy))
		return 0; /* another hook finished it first */
	/* xchg to DONE: a compare-and-swap still to come (the idle iterator, or a ClientHello, racing
	 * this end on another CPU) finds no state it expects and announces nothing after the end */
	announced = __sync_lock_test_and_set(&x->t->announced, BUSTED_ANNOUNCED_DONE);
	if (kind == BUSTED_EV_FAIL && announced == BUSTED_ANNOUNCED_YES) {
		/* The caller judged "never used" from a plain read, and another CPU announced it since
		 * (its first byte, or the idle iterator): its CONNECT is on the ring, so it ends as an
		 * announced connection does, with a CLOSE (as tcp_closed ends one), never a FAIL after it. */
		kind = BUSTED_EV_CLOSE;
		error = 0;
	}
	if (announced == BUSTED_ANNOUNCED_QUIET || (announced == BUSTED_ANNOUNCED_KEPT && kind == BUSTED_EV_CLOSE)) {
		if (cfg.quiet == BUSTED_QUIET_LATE) /* error: 0, or the census's BUSTED_END_UNSEEN */
			emit(cookie, x->s, BUSTED_EV_BRIEF, a, kind == BUSTED_EV_CLOSE ? error : 0, x->t->tx, x->t->rx);
		else
			stat_inc(BUSTED_STAT_QUIET); /* kept back whole: counted, not reported */
	} else if (kind == BUSTED_EV_FAIL && cfg.quiet == BUSTED_QUIET_COUNT &&
		   (announced == BUSTED_ANNOUNCED_KEPT || !worth_reporting(x->s, a))) {
		stat_inc(BUSTED_STAT_QUIET_FAILED);
	} else {
		emit(cookie, x->s, kind, a, error, x->t->tx, x->t->rx);
	}
	give_back(cookie, x);
	return 1;
}

/*
 * A tracing program's view of a socket's cookie: the one it has, or 0 if none was ever made.
 * track() makes it (bpf_get_socket_cookie) when a socket connects (or enters SYN_SENT), so a
 * socket without one was never tracked, and the helper, which would make one, is not needed.
 */
static __always_inline __u64 cookie_of(const struct sock *sk)
{
	return sk->__sk_common.skc_cookie.counter;
}

/*
 * ---- A TCP socket's sent count, from the socket's own sequence numbers ----
 *
 * The bytes a TCP socket's owner wrote are write_seq - tx_base (mod 2^32; tx_base is write_seq
 * before the first byte, set by the first send that reaches the map), less 1 once a FIN is
 * queued. A bulk send (count_bytes) leaves the map alone: the next program that reads the
 * socket (a send that reaches the map, a receive, the end) brings the count up to date. A count
 * is only ever raised to a value read from the socket, by compare-and-swap, so bytes are neither
 * lost nor counted twice, whichever CPU and hook gets there first.
 */

/* 1 if this state comes after our FIN was queued, 0 if it comes before, -1 unknown (CLOSE: the
 * end came with or without one) */
static __always_inline int fin_in_seq(int state)
{
	if (state == BUSTED_TCP_ESTABLISHED || state == BUSTED_TCP_CLOSE_WAIT || state == BUSTED_TCP_SYN_SENT)
		return 0;
	if (state == BUSTED_TCP_FIN_WAIT1 || state == BUSTED_TCP_FIN_WAIT2 || state == BUSTED_TCP_CLOSING ||
	    state == BUSTED_TCP_LAST_ACK)
		return 1;
	return -1;
}

/* The high half of a TCP socket's tx_base: its cookie's low 31 bits, plus 1 (never 0). */
static __always_inline __u64 tx_tag(__u64 cookie)
{
	return ((cookie & 0x7fffffff) + 1) << 32;
}

/* Raises a sent count to `written`, the low 32 bits of the true count, less than 2^31 above it:
 * the sends the hook left are within one 2^BUSTED_BULK_SHIFT span, and tcp_sent raises it to the
 * start of a send before its end (a send moves at most 2^31 - 4096 bytes). */
static __always_inline void tx_upto(struct busted_traffic *t, __u32 written)
{
	for (int i = 0; i < 3; i++) {
		__u64 old = t->tx;
		__s32 d = (__s32)(written - (__u32)old);

		if (d <= 0 || __sync_val_compare_and_swap(&t->tx, old, old + d) == old)
			return;
	}
	/* three other CPUs raised it meanwhile: the next read of the socket catches up */
}

/* A receive reads the socket: the sent count catches up with bulk sends not counted yet. */
static __always_inline void tcp_catch_up(const struct sock *sk, const struct tcp_sock *tp, __u64 cookie,
					 const struct busted_sock *s, struct busted_traffic *t)
{
	__u64 base = s->tx_base;
	int fin;

	if ((base & ~0xffffffffULL) != tx_tag(cookie))
		return;
	fin = fin_in_seq(sk->__sk_common.skc_state);
	if (fin >= 0) /* in CLOSE, the end counts it */
		tx_upto(t, tp->write_seq - (__u32)base - fin);
}

/*
 * At a TCP socket's end, the sent count takes the bulk sends not counted yet. `fin`: as
 * fin_in_seq for the state it ended from; -1 when unknown (an error report, in CLOSE): the rest
 * is data, unless it is exactly one byte (a bulk send is never one byte, a FIN is). Probe reads:
 * the release hook's socket is not a BTF pointer.
 */
static __always_inline void tcp_settle(const struct sock *sk, __u64 cookie, struct tracked *x, int fin)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 base = x->s->tx_base;
	__u32 ws;

	if ((base & ~0xffffffffULL) != tx_tag(cookie))
		return;
	if (BPF_CORE_READ(tp, bytes_sent) == 0)
		return; /* nothing sent; or tcp_disconnect(), which zeroes it and moves write_seq on */
	ws = BPF_CORE_READ(tp, write_seq);
	if (fin < 0)
		fin = ws - (__u32)base - (__u32)x->t->tx == 1;
	tx_upto(x->t, ws - (__u32)base - fin);
}

/* A TCP socket went to CLOSE: a tracked one is finished (FAIL if it was never established).
 * `fin`: as tcp_settle's. */
static __always_inline void tcp_closed(const struct sock *sk, int fin)
{
	struct tracked x;
	struct addrs a;
	__u64 cookie = cookie_of(sk);

	if (!cookie)
		return; /* never tracked (a server's socket that nobody asked a cookie of) */
	if (find(cookie, &x))
		return; /* untracked (a server's socket), or already finished by sock_release */
	addrs_from_btf(&a, sk);
	/* CLOSE before ever being established: the connect failed (refused, timed out, reset) */
	if (x.t->announced == BUSTED_ANNOUNCED_NO || x.t->announced == BUSTED_ANNOUNCED_KEPT) {
		finish(cookie, &x, BUSTED_EV_FAIL, &a, sk->sk_err);
	} else {
		tcp_settle(sk, cookie, &x, fin);
		finish(cookie, &x, BUSTED_EV_CLOSE, &a, 0);
	}
}

static __always_inline int handle_state(const struct sock *sk, int oldstate, int newstate)
{
	struct tracked x;
	struct addrs a;
	__u64 cookie;

	/* Ten transitions per loopback connection (both ends) pass here; only three matter, so
	 * the others leave before any helper call: SYN_SENT (a connect starts), SYN_SENT ->
	 * ESTABLISHED (it succeeded; a server's child becomes ESTABLISHED from SYN_RECV) and CLOSE. */
	if (newstate == BUSTED_TCP_ESTABLISHED) {
		if (oldstate != BUSTED_TCP_SYN_SENT)
			return 0;
	} else if (newstate != BUSTED_TCP_SYN_SENT && newstate != BUSTED_TCP_CLOSE) {
		return 0;
	}
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	if (newstate == BUSTED_TCP_SYN_SENT) {
		track(bpf_get_socket_cookie((void *)sk), IPPROTO_TCP, BUSTED_ANNOUNCED_NO, sk->__sk_common.skc_net.net->ns.inum);
		return 0;
	}
	if (newstate == BUSTED_TCP_CLOSE) {
		tcp_closed(sk, fin_in_seq(oldstate));
		return 0;
	}
	cookie = cookie_of(sk);
	if (!cookie)
		return 0; /* never tracked (a server's socket that nobody asked a cookie of) */
	if (find(cookie, &x))
		return 0; /* untracked (a server's socket), or already finished by sock_release */
	addrs_from_btf(&a, sk);
	announce(cookie, x.s, x.t, &a);
	return 0;
}

/*
 * Where a TCP connection's life is seen depends on what user space could attach:
 * - With the cgroup programs (the usual case): the connect hook tracks the socket, its first
 *   send or receive announces it (the CONNECT), sock_release finishes it, and
 *   inet_sk_error_report finishes one that the kernel ends on an error (refused, timed out,
 *   reset) while its owner still holds it. Two program runs per connection, not ten: the
 *   state-change tracepoint below runs on every transition of both ends of every connection.
 * - Without them (no cgroup v2): every state change here, as it was before (busted_set_state).
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(busted_set_state, const struct sock *sk, int oldstate, int newstate)
{
	return handle_state(sk, oldstate, newstate);
}

/* The kernel reported an error on a socket. A TCP socket it ended (refused, timed out, reset)
 * is now CLOSE: finished here, with the error, whoever holds it. */
SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(busted_sk_error, const struct sock *sk)
{
	if (sk->sk_protocol != IPPROTO_TCP || sk->__sk_common.skc_state != BUSTED_TCP_CLOSE)
		return 0; /* e.g. an ICMP error reported to an IP_RECVERR socket that lives on */
	tcp_closed(sk, -1);
	return 0;
}

/*
 * Connections that stay idle: with the cgroup programs, a TCP connection is announced at its
 * first send or receive, so one that moves no byte would wait until it closes. User space runs
 * this iterator (bpf_iter over the TCP sockets of its network namespace, at most once a second)
 * when a counter slot stays unannounced, and with no minimum age when a process becomes blocked:
 * every tracked, established, still unannounced socket whose connect() is at least
 * idle_min_age[0] ns old is announced here, as its first byte would have announced it. Under
 * BUSTED_QUIET_LATE (busted --all) so is one kept back (QUIET or KEPT), used or not: a short
 * connection is reported at its close in one record, a long one within a second or two.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} idle_min_age SEC(".maps");

SEC("iter/tcp")
int busted_idle(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock *tp;
	struct tracked x;
	struct addrs a;
	__u64 *min_age, cookie, was;
	__u32 zero = 0;

	if (!skc)
		return 0;
	if (skc->skc_state != BUSTED_TCP_ESTABLISHED && skc->skc_state != BUSTED_TCP_CLOSE_WAIT)
		return 0; /* listening, connecting, closing, time-wait and request sockets */
	cookie = skc->skc_cookie.counter;
	if (!cookie)
		return 0; /* never tracked */
	min_age = bpf_map_lookup_elem(&idle_min_age, &zero);
	if (!min_age || find(cookie, &x))
		return 0;
	was = x.t->announced;
	if (was == BUSTED_ANNOUNCED_YES || was == BUSTED_ANNOUNCED_DONE ||
	    (was != BUSTED_ANNOUNCED_NO && cfg.quiet != BUSTED_QUIET_LATE) ||
	    x.s->proto != IPPROTO_TCP || bpf_ktime_get_ns() - x.s->connect_ns < *min_age)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	addrs_from_btf(&a, (const struct sock *)tp);
	if (cfg.quiet == BUSTED_QUIET_LATE)
		announce_from(cookie, x.s, x.t, &a, was); /* busted --all: whatever it is, reported now */
	else
		announce(cookie, x.s, x.t, &a); /* NO (checked above): judged; one kept back now is counted at its end */
	return 0;
}

/* ---- the census: a second witness of a TCP connection's end (busted.h) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BUSTED_SLOTS);
	__type(key, __u32);
	__type(value, struct busted_census_slot);
} census SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct busted_census_cfg);
} census_cfg SEC(".maps");

/* Network namespaces (inode) -> the generation of the last census that walked them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BUSTED_CENSUS_NETNS_MAX);
	__type(key, __u32);
	__type(value, __u32);
} census_ns SEC(".maps");

/* A slot whose socket no hook saw end: finished as its release would have, without addresses
 * (a CLOSE is read for its counters and times; under --all one kept back after it moved bytes
 * is reported whole, a BRIEF with no addresses; by default one kept back is counted as any).
 * One that never moved a byte (not announced, or kept back at its connect and never used: most
 * likely a connect that failed before a packet went out, whose owner still holds it) is not
 * reported. Each is counted in BUSTED_STAT_UNSEEN, and by the TCP state the census last met it in
 * (BUSTED_STAT_UNSEEN_LAST + state; 0 when no census met it). */
static __always_inline void unseen_counted(__u8 last_state)
{
	stat_inc(BUSTED_STAT_UNSEEN);
	stat_inc(BUSTED_STAT_UNSEEN_LAST + (last_state & (BUSTED_TCP_STATES - 1)));
}

static __always_inline void finish_unseen(__u64 cookie, struct tracked *x, __u8 last_state)
{
	struct busted_sock copy;
	struct addrs a = {};
	__u64 was = x->t->announced;

	if (was != BUSTED_ANNOUNCED_NO && was != BUSTED_ANNOUNCED_KEPT) {
		if (finish(cookie, x, BUSTED_EV_CLOSE, &a, BUSTED_END_UNSEEN))
			unseen_counted(last_state);
		return;
	}
	if (!take(cookie, x, &copy))
		return; /* its real end came meanwhile */
	if (__sync_lock_test_and_set(&x->t->announced, BUSTED_ANNOUNCED_DONE) == BUSTED_ANNOUNCED_YES)
		emit(cookie, x->s, BUSTED_EV_CLOSE, &a, BUSTED_END_UNSEEN, x->t->tx, x->t->rx); /* announced meanwhile */
	unseen_counted(last_state);
	give_back(cookie, x);
}

struct census_judge {
	struct busted_census_cfg cfg;
};

static long census_judge_slot(__u32 idx, struct census_judge *j)
{
	struct busted_census_slot *c;
	struct busted_slot *slot;
	struct busted_sock *s;
	struct tracked x;
	__u32 *walked;
	__u64 cookie;

	slot = bpf_map_lookup_elem(&traffic_slots, &idx);
	if (!slot)
		return 1;
	cookie = slot->cookie;
	if (cookie == 0 || cookie == BUSTED_SLOT_BUSY)
		return 0;
	s = bpf_map_lookup_elem(&slot_socks, &idx);
	c = bpf_map_lookup_elem(&census, &idx);
	if (!s || !c)
		return 1;
	/* tracked after the census began (maybe not in the TCP tables yet), UDP, or in a namespace
	 * this census did not walk: not judged */
	if (s->proto != IPPROTO_TCP || s->connect_ns >= j->cfg.start_ns)
		return 0;
	walked = bpf_map_lookup_elem(&census_ns, &s->netns);
	if (!walked || *walked != j->cfg.gen)
		return 0;
	if (c->cookie != cookie) {
		c->cookie = cookie;
		c->seen = 0;
		c->missed = 0;
		c->state = 0;
	}
	if (c->seen == j->cfg.gen) {
		c->missed = 0;
		return 0;
	}
	if (++c->missed < BUSTED_CENSUS_MISSES)
		return 0;
	x.slot = slot;
	x.t = &slot->counters;
	x.s = s;
	finish_unseen(cookie, &x, c->state);
	return 0;
}

SEC("iter/tcp")
int busted_census(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct busted_census_cfg *cc;
	struct busted_census_slot *c;
	struct busted_slot *slot;
	struct census_judge j;
	__u32 zero = 0, idx;
	__u64 cookie;

	cc = bpf_map_lookup_elem(&census_cfg, &zero);
	if (!cc || !cc->gen)
		return 0;
	if (!skc) {
		/* the end of a walk (the iterator's last call): the last walk judges every slot */
		if (cc->finish) {
			j.cfg = *cc;
			bpf_loop(BUSTED_SLOTS, census_judge_slot, &j, 0);
		}
		return 0;
	}
	/* a time-wait socket stands for one that has ended (its owner closed it, or shut it down and
	 * the peer closed too): it carries that socket's cookie, but is not it */
	if (skc->skc_state == BUSTED_TCP_TIME_WAIT || skc->skc_state == BUSTED_TCP_NEW_SYN_RECV)
		return 0;
	cookie = skc->skc_cookie.counter;
	if (!cookie)
		return 0;
	slot = slot_of(cookie, &idx);
	if (!slot)
		return 0; /* untracked, or in the overflow hashes (not judged) */
	c = bpf_map_lookup_elem(&census, &idx);
	if (!c)
		return 0;
	if (c->cookie != cookie) {
		c->cookie = cookie;
		c->missed = 0;
	}
	c->seen = cc->gen;
	c->state = skc->skc_state;
	return 0;
}

/* ---- payload samples, read from the caller's own buffers ----
 *
 * The send and receive hooks run inside the system call that moved the bytes, so the caller's
 * buffer holds exactly what went out (a ClientHello) or just came in (a DNS answer). Reading it
 * there costs nothing per packet: no program runs on the packet path unless a flow is cut. The
 * calls understood are the ones TLS libraries and resolvers use: write/read, writev/readv (the
 * first BUSTED_IOV_MAX buffers), send(to)/recv(from) and sendmsg/recvmsg. Others (io_uring,
 * recvmmsg, a kernel thread's own sockets, 32-bit tasks) are not sampled.
 */

#define BUSTED_IOV_MAX 4
#define PF_KTHREAD 0x00200000

#if defined(__TARGET_ARCH_x86)
#define NR_READ 0
#define NR_WRITE 1
#define NR_READV 19
#define NR_WRITEV 20
#define NR_SENDTO 44
#define NR_RECVFROM 45
#define NR_SENDMSG 46
#define NR_RECVMSG 47
#define SYSCALL_NR(regs) ((regs)->orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define NR_READ 63
#define NR_WRITE 64
#define NR_READV 65
#define NR_WRITEV 66
#define NR_SENDTO 206
#define NR_RECVFROM 207
#define NR_SENDMSG 211
#define NR_RECVMSG 212
#define SYSCALL_NR(regs) ((regs)->syscallno)
#else
#error "busted reads system call arguments on x86_64 and arm64 only"
#endif

/* The user buffers of the system call in progress. */
struct ubufs {
	__u64 base[BUSTED_IOV_MAX];
	__u64 len[BUSTED_IOV_MAX];
	__u32 n;
};

static __always_inline int read_iovs(struct ubufs *u, const struct iovec *iov, __u64 cnt)
{
	struct iovec v[BUSTED_IOV_MAX];

	if (cnt == 0)
		return -1;
	if (cnt > BUSTED_IOV_MAX)
		cnt = BUSTED_IOV_MAX;
	if (bpf_probe_read_user(v, sizeof(v[0]) * BUSTED_IOV_MAX, iov)) {
		/* the array may end before a page that is not there: its first entry alone */
		if (bpf_probe_read_user(v, sizeof(v[0]), iov))
			return -1;
		cnt = 1;
	}
	for (int i = 0; i < BUSTED_IOV_MAX; i++) {
		if (i >= cnt)
			break;
		u->base[i] = (__u64)v[i].iov_base;
		u->len[i] = v[i].iov_len;
		u->n = i + 1;
	}
	return 0;
}

/*
 * Where a task's saved user registers sit, from the start of its kernel stack (the same for every
 * task: the top of a THREAD_SIZE stack). Learned from the first bpf_task_pt_regs() call; after
 * that the registers are read through bpf_rdonly_cast() of task->stack, which the verifier turns
 * into a plain move, saving the helper call (≈ 25 ns of a connection's first send on the
 * project's machine). On kernels without bpf_rdonly_cast (before 6.2) the weak kfunc is absent and
 * the helper is always used.
 */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;
__s64 regs_offset = 0;

/* The system call number and its second and third arguments; 0 when they could be read. */
static __always_inline int syscall_args(struct task_struct *task, long *nr, __u64 *a2, __u64 *a3)
{
	struct pt_regs *regs;
	__s64 off = regs_offset;

	if (bpf_rdonly_cast && off) {
		regs = bpf_rdonly_cast((void *)((__u64)task->stack + off), bpf_core_type_id_kernel(struct pt_regs));
	} else {
		regs = (struct pt_regs *)bpf_task_pt_regs(task);
		if (!regs)
			return -1;
		if (bpf_rdonly_cast)
			regs_offset = (__s64)regs - (__s64)task->stack;
	}
	*nr = SYSCALL_NR(regs);
	*a2 = PT_REGS_PARM2_SYSCALL(regs);
	*a3 = PT_REGS_PARM3_SYSCALL(regs);
	return 0;
}

/* Fills `u` from the current task's system call; 0 when it is one of the calls above. */
static __always_inline int user_bufs(struct ubufs *u, int rx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct user_msghdr mh;
	__u64 a2, a3;
	long nr;

	if (task->flags & PF_KTHREAD)
		return -1;
	if (syscall_args(task, &nr, &a2, &a3))
		return -1;
	u->n = 0;
	if (nr == (rx ? NR_READ : NR_WRITE) || nr == (rx ? NR_RECVFROM : NR_SENDTO)) {
		u->base[0] = a2;
		u->len[0] = a3;
		u->n = 1;
		return 0;
	}
	if (nr == (rx ? NR_READV : NR_WRITEV))
		return read_iovs(u, (const struct iovec *)a2, a3);
	if (nr == (rx ? NR_RECVMSG : NR_SENDMSG)) {
		if (bpf_probe_read_user(&mh, sizeof(mh), (const void *)a2))
			return -1;
		return read_iovs(u, mh.msg_iov, mh.msg_iovlen);
	}
	return -1;
}

struct line_scan {
	struct busted_payload *e;
	__s64 end; /* index of the request line's '\n', or -1 */
};

/* bpf_loop callback: byte i of the sample, up to the first '\n'; every byte after it is zeroed. */
static long scan_line(__u64 i, void *ctx)
{
	struct line_scan *s = ctx;
	struct busted_payload *e = s->e;

	if (i >= BUSTED_CONNECT_MAX || i >= e->len)
		return 1;
	if (s->end >= 0)
		e->data[i] = 0;
	else if (e->data[i] == '\n')
		s->end = i;
	return 0;
}

/* A CONNECT request's sample keeps its request line only: the header lines after it (a
 * Proxy-Authorization among them) are zeroed before the record leaves the kernel. */
static __always_inline void keep_request_line(struct busted_payload *e)
{
	struct line_scan s = { .e = e, .end = -1 };

	bpf_loop(BUSTED_CONNECT_MAX, scan_line, &s, 0);
	if (s.end >= 0)
		e->len = s.end + 1;
}

/* One sample of n (1..BUSTED_PAYLOAD_MAX) bytes at user address `from`; `line_only`: a CONNECT
 * request's, cut to its request line (keep_request_line). */
static __always_inline void emit_user(__u64 cookie, __u8 what, __u8 proto, const struct addrs *a,
				      __u32 stream_off, __u32 total, __u64 ts, __u64 from, __u64 n, int line_only)
{
	struct busted_payload *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		stat_inc(BUSTED_STAT_LOST);
		return;
	}
	e->kind = BUSTED_EV_PAYLOAD;
	e->family = a->family;
	e->what = what;
	e->proto = proto;
	e->cookie = cookie;
	e->ts_ns = ts;
	e->offset = stream_off;
	e->total = total;
	e->_pad0 = 0;
	__builtin_memcpy(e->saddr, a->saddr, 16);
	__builtin_memcpy(e->daddr, a->daddr, 16);
	e->sport = a->sport;
	e->dport = a->dport;
	e->_pad1 = 0;
	/* the verifier needs a bounded, non-zero length in the register it sees */
	asm volatile("" : "+r"(n));
	if (n < 1 || n > BUSTED_PAYLOAD_MAX || bpf_probe_read_user(e->data, n, (const void *)from))
		e->len = 0;
	else
		e->len = n;
	if (line_only)
		keep_request_line(e);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP); /* consumed on a timer: no wakeups */
}

/* The first m bytes this call moved, as samples at stream offset `off` (at most CHUNKS). */
static __always_inline void emit_bufs(const struct ubufs *u, __u64 m, __u64 cookie, __u8 what, __u8 proto,
				      const struct addrs *a, __u32 off, __u32 total, __u64 ts)
{
	__u64 pos = 0;
	int left = BUSTED_PAYLOAD_CHUNKS;

	for (int i = 0; i < BUSTED_IOV_MAX; i++) {
		__u64 seg;

		if (i >= u->n || pos >= m)
			break;
		seg = u->len[i];
		if (seg > m - pos)
			seg = m - pos;
		for (int c = 0; c < BUSTED_PAYLOAD_CHUNKS; c++) {
			__u64 from = (__u64)c * BUSTED_PAYLOAD_MAX;
			__u64 n;

			if (from >= seg || left <= 0)
				break;
			n = seg - from;
			if (n > BUSTED_PAYLOAD_MAX)
				n = BUSTED_PAYLOAD_MAX;
			emit_user(cookie, what, proto, a, off + pos + from, total, ts, u->base[i] + from, n, 0);
			left--;
		}
		pos += seg;
	}
}

/*
 * config.quiet: a TCP flow kept back (or not announced yet) whose first payload starts a TLS
 * handshake is reported now, before its ClientHello sample: user space judges it by its SNI.
 */
static __always_inline void promote_tls(__u64 cookie, const struct addrs *a)
{
	struct tracked x;
	__u64 was;

	if (find(cookie, &x))
		return;
	was = x.t->announced;
	if (was != BUSTED_ANNOUNCED_YES && was != BUSTED_ANNOUNCED_DONE)
		announce_from(cookie, x.s, x.t, a, was);
}

/* A ClientHello still being sampled after the stream's first send: its owner's hello_need. */
static __always_inline __u32 hello_need(__u64 cookie)
{
	struct tracked x;

	return find(cookie, &x) == 0 ? x.s->hello_need : 0;
}

static __always_inline void set_hello_need(__u64 cookie, __u16 need)
{
	struct tracked x;

	if (find(cookie, &x) == 0)
		x.s->hello_need = need;
}

/* The first 8 bytes of an HTTP CONNECT request ("CONNECT "): a tunnel through a proxy (HTTPS_PROXY). */
static __always_inline int starts_connect(const __u8 *h)
{
	return h[0] == 'C' && h[1] == 'O' && h[2] == 'N' && h[3] == 'N' && h[4] == 'E' && h[5] == 'C' &&
	       h[6] == 'T' && h[7] == ' ';
}

/*
 * A tracked TCP stream sent `ret` bytes at stream offset `off`: if the stream opens with a TLS
 * handshake record, its first BUSTED_HELLO_MAX bytes at most (the record: the ClientHello) are
 * sampled. A record longer than the first send is noted in the owner (hello_need), and the sends
 * after it are sampled (called with `need`, for those, only while it is set) up to its end.
 * A stream that opens with an HTTP CONNECT request has its request line sampled (from the first
 * send's first buffer, at most BUSTED_CONNECT_MAX bytes, the rest zeroed: keep_request_line), as
 * the same kind of sample (user space tells them apart); nothing after it is.
 * A subprogram (see first_send): its frame, over 64 bytes, is its own.
 */
static __noinline void sample_tls(const struct sock *sk, __u64 cookie, __u64 off, int ret, __u64 need)
{
	struct ubufs u;
	struct addrs a;
	__u64 m;
	__u8 head[8] = {};

	if (user_bufs(&u, 0))
		return;
	if (off == 0) {
		m = u.len[0] < sizeof(head) ? u.len[0] : sizeof(head);
		if (m < 5 || bpf_probe_read_user(head, m, (const void *)u.base[0]))
			return;
		if (head[0] == TLS_HANDSHAKE) {
			need = 5 + (((__u32)head[3] << 8) | head[4]);
			if (need > BUSTED_HELLO_MAX)
				need = BUSTED_HELLO_MAX;
		} else if (starts_connect(head)) {
			/* its request line names the tunnel's target; what follows (the proxy's answer,
			 * then the tunnelled handshake) is not sampled */
			addrs_from_btf(&a, sk);
			if (cfg.quiet)
				promote_tls(cookie, &a);
			m = u.len[0] < (__u64)ret ? u.len[0] : (__u64)ret;
			if (m > BUSTED_CONNECT_MAX)
				m = BUSTED_CONNECT_MAX;
			emit_user(cookie, BUSTED_PL_TLS, IPPROTO_TCP, &a, 0, ret, bpf_ktime_get_ns(), u.base[0], m, 1);
			return;
		} else {
			return;
		}
	}
	addrs_from_btf(&a, sk);
	if (off == 0 && cfg.quiet)
		promote_tls(cookie, &a);
	if (off >= need)
		goto done;
	m = need - off;
	if (m > (__u64)ret)
		m = ret;
	emit_bufs(&u, m, cookie, BUSTED_PL_TLS, IPPROTO_TCP, &a, off, ret, bpf_ktime_get_ns());
	if (off + ret < need) {
		if (off == 0)
			set_hello_need(cookie, need);
		return;
	}
done:
	if (off > 0)
		set_hello_need(cookie, 0);
}

/* dns_sync[BUSTED_DNS_SEEN] = max(itself, ts): compare-and-swap, retried once if another CPU
 * moved it meanwhile (a second loss means that CPU wrote a time at least as new). */
static __always_inline void dns_seen(__u64 ts)
{
	__u32 key = BUSTED_DNS_SEEN;
	__u64 *seen = bpf_map_lookup_elem(&dns_sync, &key);

	for (int i = 0; seen && i < 2; i++) {
		__u64 old = *seen;

		if (old >= ts || __sync_val_compare_and_swap(seen, old, ts) == old)
			return;
	}
}

/*
 * Any socket (tracked or not) read `ret` bytes: a DNS answer if its peer is port 53, or if it
 * is an unconnected UDP socket that sent to port 53 (marked in `dns_socks` by cgroup/sendmsg:
 * the sender's address only reaches the caller after this hook).
 */
static __noinline void sample_dns(const struct sock *sk, int ret)
{
	__u16 dport = bpf_ntohs(sk->__sk_common.skc_dport);
	__u8 proto = sk->sk_protocol;
	struct ubufs u;
	struct addrs a, r;
	__u64 ts;

	if (dport == 0 && !bpf_sk_storage_get(&dns_socks, (void *)sk, 0, 0))
		return;
	if (user_bufs(&u, 1) || u.n == 0)
		return;
	u.n = 1; /* one sample per message: its first buffer (resolvers read into one) */
	addrs_from_btf(&a, sk);
	a.dport = DNS_PORT;
	/* the sample goes as a packet from the server would: source = the peer */
	__builtin_memcpy(r.saddr, a.daddr, 16);
	__builtin_memcpy(r.daddr, a.saddr, 16);
	r.family = a.family;
	r.sport = a.dport;
	r.dport = a.sport;
	ts = bpf_ktime_get_ns();
	if (cfg.quiet)
		dns_seen(ts); /* before the sample, and before the resolver has the answer */
	/* one sample per read: answers longer than BUSTED_PAYLOAD_MAX are cut (and parsed as far as they go) */
	emit_bufs(&u, ret < BUSTED_PAYLOAD_MAX ? ret : BUSTED_PAYLOAD_MAX, cookie_of(sk), BUSTED_PL_DNS, proto, &r, 0, ret, ts);
}

/* Whether a read from this socket may be a DNS answer (sample_dns decides). */
static __always_inline int maybe_dns(const struct sock *sk)
{
	__u16 dport = bpf_ntohs(sk->__sk_common.skc_dport);
	__u8 proto = sk->sk_protocol;

	if (proto == IPPROTO_UDP)
		return dport == DNS_PORT || dport == 0;
	return proto == IPPROTO_TCP && dport == DNS_PORT;
}

/* A tracked socket's first send or receive announces it (TCP with the cgroup programs, and UDP). */
static __noinline void announce_late(const struct sock *sk, __u64 cookie)
{
	struct tracked x;
	struct addrs a;

	if (find(cookie, &x))
		return;
	addrs_from_btf(&a, sk);
	announce(cookie, x.s, x.t, &a);
}

/* A tracked socket's send or receive: the first one announces it, or makes a kept one (judged
 * out at its connect) a used one, which is not judged again. */
static __always_inline void first_use(const struct sock *sk, __u64 cookie, struct busted_traffic *t)
{
	__u64 was = t->announced;

	if (was == BUSTED_ANNOUNCED_NO)
		announce_late(sk, cookie);
	else if (was == BUSTED_ANNOUNCED_KEPT)
		__sync_val_compare_and_swap(&t->announced, BUSTED_ANNOUNCED_KEPT, BUSTED_ANNOUNCED_QUIET);
}

/*
 * A TCP stream's first send: does it start a TLS handshake record, or an HTTP CONNECT request
 * (whose target host user space reads)? This runs for every
 * connection, so it stays in the hook's own small frame and calls sample_tls only for a
 * handshake (or a send from an iovec, which only sample_tls reads). Since 6.13 a tracing program
 * whose frame reaches 64 bytes runs on a per-CPU private stack, and a read of user memory into
 * it takes hardened usercopy's slow path (the destination is not on the task's stack): with the
 * whole sampling inlined, this cost every connection ≈ 35 ns on the project's machine.
 */
static __always_inline void first_send(const struct sock *sk, __u64 cookie, int ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u8 head[8] = {};
	__u64 a2, a3, n;
	long nr;

	if (task->flags & PF_KTHREAD)
		return;
	if (syscall_args(task, &nr, &a2, &a3))
		return;
	if (nr == NR_WRITE || nr == NR_SENDTO) {
		n = a3 < sizeof(head) ? a3 : sizeof(head);
		if (n < 5 || bpf_probe_read_user(head, n, (const void *)a2) ||
		    (head[0] != TLS_HANDSHAKE && !starts_connect(head)))
			return;
	} else if (nr != NR_WRITEV && nr != NR_SENDMSG) {
		return;
	}
	sample_tls(sk, cookie, 0, ret, 0);
}

/* A TCP stream socket's tcp_sock (a full socket: the send and receive tracepoints' are), else NULL. */
static __always_inline const struct tcp_sock *tcp_of(struct sock *sk)
{
	if (sk->sk_protocol != IPPROTO_TCP || sk->sk_type != SOCK_STREAM)
		return NULL;
	if (bpf_rdonly_cast) /* no helper call (before 6.2: the helper) */
		return bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock));
	return bpf_skc_to_tcp_sock(sk);
}

/*
 * A bulk TCP send between two 2^BUSTED_BULK_SHIFT boundaries of its socket's write_seq, past the
 * stream's first BUSTED_HELLO_MAX bytes: left to the next read of the socket (the map's line,
 * which a large copy has pushed out of the caches, costs 70-130 ns here: bench/README, session
 * 25; the socket's lines read here the send has just written). More fresh bytes sent (less
 * retransmissions) than this send and BUSTED_HELLO_MAX mean that the first send, which sets
 * tx_base, and every send that may be sampled went through the map.
 */
static __always_inline int bulk_between(struct sock *sk, int ret)
{
	const struct tcp_sock *tp = tcp_of(sk);
	__u32 ws;

	if (!tp)
		return 0;
	ws = tp->write_seq;
	return tp->bytes_sent - tp->bytes_retrans > (__u64)ret + BUSTED_HELLO_MAX &&
	       !((ws ^ (ws - (__u32)ret)) >> BUSTED_BULK_SHIFT);
}

/* A TCP send that reached the map: the count from the socket (the first such send sets tx_base).
 * Returns the stream offset of the send's first byte: computed from the socket alone, the same
 * whichever way the count went, so the verifier meets one state after this, not one per path. */
static __always_inline __u64 tcp_sent(const struct sock *sk, const struct tcp_sock *tp, __u64 cookie,
				      struct busted_sock *s, struct busted_traffic *t, int ret)
{
	__u64 tag = tx_tag(cookie), base = s->tx_base;
	__u32 ws = tp->write_seq, written;
	int fin;

	if ((base & ~0xffffffffULL) != tag)
		__sync_val_compare_and_swap(&s->tx_base, base, tag | (__u32)(ws - (__u32)ret - (__u32)t->tx));
	base = s->tx_base;
	written = ws - (__u32)base;
	fin = fin_in_seq(sk->__sk_common.skc_state);
	if (fin >= 0) { /* in CLOSE (it ended meanwhile), its end counts it */
		tx_upto(t, written - fin - (__u32)ret); /* the sends left before this one */
		tx_upto(t, written - fin);
	}
	return (__u32)(written - (__u32)ret);
}

/* Counts a tracked socket's send or receive. Returns the stream offset of a TCP send's first
 * byte, or BUSTED_HELLO_MAX (nothing to sample). */
static __always_inline __u64 count(struct sock *sk, __u64 cookie, int ret, int is_rx)
{
	const struct tcp_sock *tp;
	struct tracked x;
	__u64 off;

	if (find(cookie, &x))
		return BUSTED_HELLO_MAX;
	tp = tcp_of(sk);
	if (is_rx) {
		__sync_fetch_and_add(&x.t->rx, ret);
		if (tp)
			tcp_catch_up(sk, tp, cookie, x.s, x.t);
		first_use(sk, cookie, x.t); /* a server spoke first */
		return BUSTED_HELLO_MAX;
	}
	if (!tp) {
		__sync_fetch_and_add(&x.t->tx, ret);
		first_use(sk, cookie, x.t);
		return BUSTED_HELLO_MAX;
	}
	off = tcp_sent(sk, tp, cookie, x.s, x.t, ret);
	first_use(sk, cookie, x.t);
	return off;
}

static __always_inline void count_bytes(struct sock *sk, int ret, int is_rx)
{
	__u64 cookie, off;
	__u32 need, big;

	if (ret <= 0)
		return;
	if (is_rx && cfg.sample_payload && maybe_dns(sk))
		sample_dns(sk, ret);
	/* the size test on a copy: a test of `ret` itself would split its range, and the sampling
	 * below (whose reads `ret` bounds) would be verified once per part: over the verifier's
	 * million instructions without --all. With it: 716k here (HEAD before this change: 710k) */
	big = (__u32)ret / BUSTED_BULK_SEND;
	barrier_var(big);
	if (!is_rx && big && sk->sk_protocol == IPPROTO_TCP && bulk_between(sk, ret))
		return;
	cookie = cookie_of(sk);
	if (!cookie)
		return; /* never tracked: no cookie generated just to miss the lookup */
	off = count(sk, cookie, ret, is_rx);
	if (off >= BUSTED_HELLO_MAX || !cfg.sample_payload)
		return;
	if (off == 0) {
		first_send(sk, cookie, ret);
		return;
	}
	need = hello_need(cookie);
	if (need)
		sample_tls(sk, cookie, off, ret, need);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(busted_send, struct sock *sk, int ret, int flags)
{
	count_bytes(sk, ret, 0);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(busted_recv, struct sock *sk, int ret, int flags)
{
	if (flags & MSG_PEEK) /* peeked bytes are read again later */
		return 0;
	count_bytes(sk, ret, 1);
	return 0;
}

/* ---- cutting: cgroup_skb programs, attached only while a flow is cut ---- */

/* A flow of a process that became blocked: its packets are dropped. */
static __always_inline int is_cut(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct busted_policy *pol = bpf_map_lookup_elem(&policy, &zero);
	__u64 cookie;

	if (!pol || !pol->cut)
		return 0;
	cookie = bpf_get_socket_cookie(skb);
	return bpf_map_lookup_elem(&cut_socks, &cookie) != NULL;
}

SEC("cgroup_skb/egress")
int busted_egress(struct __sk_buff *skb)
{
	return !is_cut(skb);
}

SEC("cgroup_skb/ingress")
int busted_ingress(struct __sk_buff *skb)
{
	return !is_cut(skb);
}

/* ---- enforcement: cgroup/connect and cgroup/sendmsg decide from the maps ---- */

struct subject {
	struct busted_policy pol;
	__u64 start_ns;
	__u64 exe_hash_rules;  /* hashed_exes bits of this executable */
	struct busted_exe_id exe;
	__u32 tgid;
	__u32 uid;
	__u32 provider;
	__u32 match;           /* first matching rule, or BUSTED_RULE_DEFAULT */
	__u8 action;
	char comm[BUSTED_COMM_LEN];
};

/* The LLM provider a destination belongs to; -1 when it is not an LLM address. */
static __always_inline int llm_provider(struct bpf_sock_addr *ctx, int v6, __u32 *provider)
{
	__u32 *p;

	if (!v6) {
		struct busted_lpm4 k = { .prefixlen = 32 };

		__builtin_memcpy(k.addr, &ctx->user_ip4, 4);
		p = bpf_map_lookup_elem(&llm_v4, &k);
	} else {
		struct busted_lpm6 k = { .prefixlen = 128 };
		__u32 a[4];

		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
		__builtin_memcpy(k.addr, a, 16);
		p = bpf_map_lookup_elem(&llm_v6, &k);
	}
	if (!p)
		return -1;
	*provider = *p;
	return 0;
}

static __always_inline int comm_eq(const char *a, const char *b)
{
	for (int i = 0; i < BUSTED_COMM_LEN; i++) {
		if (a[i] != b[i])
			return 0;
		if (a[i] == 0)
			return 1;
	}
	return 1;
}

/* bpf_loop callback: does rule `i` match? Stops at the first match. */
static long match_rule(__u32 i, struct subject *sub)
{
	__u32 idx = sub->pol.bank * BUSTED_MAX_RULES + i;
	struct busted_rule *r;
	int ok;

	if (idx >= 2 * BUSTED_MAX_RULES)
		return 1;
	r = bpf_map_lookup_elem(&rules, &idx);
	if (!r)
		return 1;
	if (r->fields & BUSTED_RF_NEVER)
		return 0;
	if (r->providers && !(sub->provider < 64 && (r->providers & (1ULL << sub->provider))))
		return 0;
	if (r->fields & BUSTED_RF_HASH && !(i < 64 && (sub->exe_hash_rules & (1ULL << i))))
		return 0;
	if (r->fields & BUSTED_RF_UID) {
		ok = 0;
		for (int j = 0; j < BUSTED_RULE_ITEMS; j++)
			if (j < r->n_uid && r->uid[j] == sub->uid)
				ok = 1;
		if (!ok)
			return 0;
	}
	if (r->fields & BUSTED_RF_EXE) {
		ok = 0;
		for (int j = 0; j < BUSTED_RULE_ITEMS; j++)
			if (j < r->n_exe && r->exe[j].ino == sub->exe.ino && r->exe[j].dev == sub->exe.dev)
				ok = 1;
		if (!ok)
			return 0;
	}
	if (r->fields & BUSTED_RF_COMM) {
		ok = 0;
		for (int j = 0; j < BUSTED_RULE_ITEMS; j++)
			if (j < r->n_comm && comm_eq(r->comm[j], sub->comm))
				ok = 1;
		if (!ok)
			return 0;
	}
	if (r->fields & BUSTED_RF_CGROUP) {
		ok = 0;
		for (int j = 0; j < BUSTED_RULE_ITEMS; j++)
			if (j < r->n_cgroup &&
			    bpf_get_current_ancestor_cgroup_id(r->cgroup[j].level) == r->cgroup[j].id)
				ok = 1;
		if (!ok)
			return 0;
	}
	sub->match = i;
	sub->action = r->action;
	return 1; /* first match wins */
}

static __always_inline void emit_policy(struct bpf_sock_addr *ctx, const struct subject *sub, int v6,
					int denied, __u16 rule)
{
	struct busted_policy_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	struct task_struct *task = bpf_get_current_task_btf();
	const struct cred *cred = task->cred;

	if (!e) {
		stat_inc(BUSTED_STAT_LOST);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = BUSTED_EV_POLICY;
	e->family = v6 ? AF_INET6 : AF_INET;
	e->proto = ctx->type == SOCK_DGRAM ? IPPROTO_UDP : IPPROTO_TCP;
	e->ts_ns = bpf_ktime_get_ns();
	e->tgid = sub->tgid;
	e->tid = task->pid; /* the task's fields read directly, as fill_owner reads them */
	e->uid = cred->uid.val;
	e->gid = cred->gid.val;
	e->start_ns = sub->start_ns;
	e->cgroup_id = task->cgroups->dfl_cgrp->kn->id;
	if (v6) {
		__u32 a[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };

		__builtin_memcpy(e->daddr, a, 16);
	} else {
		__u32 a = ctx->user_ip4;

		__builtin_memcpy(e->daddr, &a, 4);
	}
	e->dport = bpf_ntohs((__u16)ctx->user_port);
	e->action = sub->action;
	e->denied = denied;
	e->rule = rule;
	e->bank = sub->pol.bank; /* a record still on the ring at a reload keeps its rule's name */
	e->provider = sub->provider;
	__builtin_memcpy(e->comm, sub->comm, BUSTED_COMM_LEN);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP); /* consumed on a timer: no wakeups */
}

/* 1: allow the connect/send, 0: refuse it (the caller sees EPERM). *llm: whether the
 * destination is an LLM address, if this looked it up (else left as it was). */
static __always_inline int enforce(struct bpf_sock_addr *ctx, int v6, int *llm)
{
	struct task_struct *task;
	struct busted_proc_key pk = {};
	struct subject sub = {};
	struct busted_policy *pol;
	struct file *exe;
	__u64 *hashed;
	__u8 *toggle;
	__u32 zero = 0;
	__u16 rule;

	pol = bpf_map_lookup_elem(&policy, &zero);
	if (!pol || !pol->active)
		return 1; /* no policy and no toggles: nothing to check */
	*llm = llm_provider(ctx, v6, &sub.provider) == 0;
	if (!*llm)
		return 1; /* only LLM destinations are ever affected */
	sub.pol = *pol;
	task = bpf_get_current_task_btf(); /* its fields read directly, as fill_owner reads them */
	sub.tgid = task->tgid;
	if (cfg.self_tgid && sub.tgid == cfg.self_tgid)
		return 1;
	sub.start_ns = task->group_leader->start_boottime;
	__builtin_memcpy(sub.comm, task->comm, sizeof(sub.comm));
	sub.match = BUSTED_RULE_DEFAULT;
	sub.action = sub.pol.default_action;
	pk.tgid = sub.tgid;
	pk.start_ticks = sub.start_ns / 10000000; /* ns → USER_HZ (100) ticks, as user space knows it */
	toggle = bpf_map_lookup_elem(&proc_verdicts, &pk);
	if (toggle && *toggle != BUSTED_ACT_NONE) {
		sub.action = *toggle;
		rule = BUSTED_RULE_TOGGLE;
	} else {
		sub.uid = task->cred->uid.val;
		exe = task->mm ? task->mm->exe_file : NULL;
		if (exe) {
			sub.exe.ino = exe->f_inode->i_ino;
			sub.exe.dev = exe->f_inode->i_sb->s_dev;
		}
		hashed = bpf_map_lookup_elem(&hashed_exes, &sub.exe);
		sub.exe_hash_rules = hashed ? *hashed : 0;
		if (sub.pol.nrules)
			bpf_loop(sub.pol.nrules < BUSTED_MAX_RULES ? sub.pol.nrules : BUSTED_MAX_RULES, match_rule, &sub, 0);
		rule = sub.match;
	}
	if (sub.action != BUSTED_ACT_BLOCK && sub.action != BUSTED_ACT_AUDIT)
		return 1;
	if (sub.action == BUSTED_ACT_BLOCK && sub.pol.enforce) {
		emit_policy(ctx, &sub, v6, 1, rule);
		return 0;
	}
	emit_policy(ctx, &sub, v6, 0, rule);
	return 1;
}

/*
 * config.quiet: a TCP connect judged by its destination, as worth_reporting judges a connection,
 * but here, where the destination is known (its source port is not yet): KEPT when it cannot be
 * LLM traffic now, else NO (judged again when announced). The connection's first send then only
 * marks it used, and an idle one never asks for the idle iterator. `llm`: enforce()'s lookup of
 * the destination (1 or 0), or -1 if it made none.
 */
static __always_inline __u64 judged_at_connect(struct bpf_sock_addr *ctx, int v6, int llm)
{
	__u32 provider;

	if (!cfg.quiet || model_port(bpf_ntohs((__u16)ctx->user_port)))
		return BUSTED_ANNOUNCED_NO;
	if (llm < 0)
		llm = llm_provider(ctx, v6, &provider) == 0;
	return llm || dns_pending() ? BUSTED_ANNOUNCED_NO : BUSTED_ANNOUNCED_KEPT;
}

/* A TCP connect, or a UDP one to the QUIC port: its socket is tracked from here (process context). */
static __always_inline void track_connect(struct bpf_sock_addr *ctx, int v6, int llm)
{
	if (ctx->type == SOCK_STREAM) {
		if (ctx->protocol != IPPROTO_TCP)
			return; /* an MPTCP socket: its TCP subflows connect through here themselves */
		track(bpf_get_socket_cookie(ctx), IPPROTO_TCP, judged_at_connect(ctx, v6, llm), sock_netns(ctx->sk));
		return;
	}
	if (ctx->type != SOCK_DGRAM || !cfg.udp_port || bpf_ntohs((__u16)ctx->user_port) != cfg.udp_port)
		return;
	track(bpf_get_socket_cookie(ctx), IPPROTO_UDP, BUSTED_ANNOUNCED_NO, 0); /* the census judges TCP only */
}

SEC("cgroup/connect4")
int busted_connect4(struct bpf_sock_addr *ctx)
{
	int llm = -1;

	if (!enforce(ctx, 0, &llm))
		return 0;
	track_connect(ctx, 0, llm);
	return 1;
}

SEC("cgroup/connect6")
int busted_connect6(struct bpf_sock_addr *ctx)
{
	int llm = -1;

	if (!enforce(ctx, 1, &llm))
		return 0;
	track_connect(ctx, 1, llm);
	return 1;
}

/* An unconnected UDP socket sending to port 53 is a resolver's: its reads are sampled. */
static __always_inline void mark_dns(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk;

	if (ctx->type != SOCK_DGRAM || bpf_ntohs((__u16)ctx->user_port) != DNS_PORT || !cfg.sample_payload)
		return;
	sk = ctx->sk;
	if (sk)
		bpf_sk_storage_get(&dns_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
}

/* Unconnected UDP (sendto) to an LLM address: the same decision per send. */
SEC("cgroup/sendmsg4")
int busted_sendmsg4(struct bpf_sock_addr *ctx)
{
	int llm;

	mark_dns(ctx);
	return enforce(ctx, 0, &llm);
}

SEC("cgroup/sendmsg6")
int busted_sendmsg6(struct bpf_sock_addr *ctx)
{
	int llm;

	mark_dns(ctx);
	return enforce(ctx, 1, &llm);
}

/*
 * The owner closed its socket (process context; cgroup programs are never skipped). For TCP
 * this comes before the protocol's own close, with every byte the owner will ever send or
 * receive already counted, and catches whatever the tracing hooks missed.
 */
SEC("cgroup/sock_release")
int busted_release(struct bpf_sock *ctx)
{
	/* a sock_release context is the kernel's struct sock, whose fields a CGROUP_SOCK program
	 * may not read directly beyond family/type/protocol: read them with CO-RE probe reads */
	const struct sock *sk = (const struct sock *)ctx;
	struct tracked x;
	struct addrs a;
	__u64 cookie;
	__u8 state;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return 1;
	cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter); /* as cookie_of(): 0 = never tracked */
	if (!cookie)
		return 1;
	if (find(cookie, &x))
		return 1; /* untracked */
	sk_view(&a, &state, sk);
	if (ctx->protocol == IPPROTO_UDP) {
		if (x.t->announced)
			finish(cookie, &x, BUSTED_EV_CLOSE, &a, 0);
		else
			untrack(cookie, &x); /* connected but never sent: not a flow */
		return 1;
	}
	if (state == BUSTED_TCP_SYN_SENT ||
	    (state == BUSTED_TCP_CLOSE && (x.t->announced == BUSTED_ANNOUNCED_NO || x.t->announced == BUSTED_ANNOUNCED_KEPT))) {
		if (state == BUSTED_TCP_CLOSE && a.dport == 0) {
			/* tracked at the connect hook, but the connect failed before a packet went out
			 * (no route, no free port: the kernel cleared the peer, the caller had its error): not a flow */
			untrack(cookie, &x);
			return 1;
		}
		finish(cookie, &x, BUSTED_EV_FAIL, &a, 0); /* abandoned, or failed unseen: reason unknown */
		return 1;
	}
	/* the addresses matter to a CONNECT not sent yet and to a BRIEF; a TCP CLOSE record is read
	 * for its counters and times */
	/* before the protocol's close: a FIN is queued only by an earlier shutdown(); in CLOSE, the
	 * FINs were exchanged (a reset's error report finished the flow before) */
	tcp_settle(sk, cookie, &x, state == BUSTED_TCP_CLOSE ? 1 : fin_in_seq(state));
	if (x.t->announced == BUSTED_ANNOUNCED_NO)
		announce(cookie, x.s, x.t, &a);
	finish(cookie, &x, BUSTED_EV_CLOSE, &a, 0);
	return 1;
}

/* Every exec: the path of the file it ran, for processes gone before user space looks. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(busted_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct busted_exec_event *ev;
	struct busted_policy *pol;
	struct busted_exec *e;
	__u32 tgid = BPF_CORE_READ(p, tgid);
	__u32 slot = tgid & (BUSTED_EXEC_SLOTS - 1);
	__u64 start_ns = BPF_CORE_READ(p, group_leader, start_boottime);
	__u32 zero = 0;
	struct file *exe;

	/* written in place (a hash update cost ~1 µs here, mostly cold memory). The writer takes the
	 * slot by a compare-and-swap of seq from even to odd (another exec writing it, a tgid 8192
	 * apart, keeps it and this path is not recorded) and gives it back by an exchange to the next
	 * even value: both fully ordered, so a reader whose two copies match with an even seq saw no write */
	e = bpf_map_lookup_elem(&execs, &slot);
	if (e) {
		__u64 seq = e->seq;

		if (!(seq & 1) && __sync_val_compare_and_swap(&e->seq, seq, seq + 1) == seq) {
			e->tgid = tgid;
			e->start_ns = start_ns;
			/* interp == filename unless a #! script was rewritten to its interpreter */
			bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(bprm, interp));
			__sync_lock_test_and_set(&e->seq, seq + 2);
		}
	}
	pol = bpf_map_lookup_elem(&policy, &zero);
	if (!pol || !pol->hash_exec)
		return 0;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		stat_inc(BUSTED_STAT_LOST);
		return 0;
	}
	ev->kind = BUSTED_EV_EXEC;
	ev->tgid = tgid;
	ev->start_ns = start_ns;
	ev->exe.dev = 0;
	ev->exe._pad0 = 0;
	ev->exe.ino = 0;
	exe = BPF_CORE_READ(bprm, file);
	if (exe) {
		ev->exe.ino = BPF_CORE_READ(exe, f_inode, i_ino);
		ev->exe.dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	}
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	return 0;
}
