// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * busted: per-socket lifecycle and byte counters for outbound TCP.
 *
 * Hooks (all load on kernels without kprobes/fentry):
 *   tp_btf/inet_sock_set_state  SYN_SENT: capture the owner (process context);
 *                               ESTABLISHED: emit CONNECT; CLOSE: emit FAIL or CLOSE.
 *   tp_btf/sock_send_length     count tx bytes of tracked sockets.
 *   tp_btf/sock_recv_length     count rx bytes of tracked sockets.
 * Only lifecycle records cross the ring buffer; byte counters stay in `traffic`
 * and user space reads them in batches.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "busted.h"

#define AF_INET 2
#define AF_INET6 10
#define MSG_PEEK 2

/* TCP states (include/net/tcp_states.h); enum values are stable ABI. */
#define BUSTED_TCP_ESTABLISHED 1
#define BUSTED_TCP_SYN_SENT 2
#define BUSTED_TCP_CLOSE 7

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by user space between open and load. */
const volatile __u32 self_tgid = 0; /* busted's own sockets are not reported */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, struct busted_sock);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, struct busted_traffic);
} traffic SEC(".maps");

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

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline void fill_owner(struct busted_owner *o)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct file *exe;

	o->tgid = pid_tgid >> 32;
	o->tid = (__u32)pid_tgid;
	o->uid = (__u32)uid_gid;
	o->gid = uid_gid >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	/* /proc/PID/stat field 22 is derived from the leader's start_boottime */
	o->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	exe = BPF_CORE_READ(task, mm, exe_file);
	if (exe) {
		o->exe_ino = BPF_CORE_READ(exe, f_inode, i_ino);
		o->exe_dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	}
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline void fill_addrs(struct busted_event *e, const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	e->family = family;
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET6) {
		/* BPF_CORE_READ_INTO would copy sizeof(*dst) == 1 byte of an array */
		bpf_core_read(e->saddr, sizeof(e->saddr), &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->daddr, sizeof(e->daddr), &sk->__sk_common.skc_v6_daddr);
	} else {
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->daddr, sk, __sk_common.skc_daddr);
	}
}

/* Process context (connect()): remember who owns the socket. */
static __always_inline void on_syn_sent(const struct sock *sk, __u64 cookie)
{
	struct busted_traffic zero = {};
	struct busted_sock s = {};

	fill_owner(&s.owner);
	if (self_tgid && s.owner.tgid == self_tgid)
		return;
	s.connect_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&sockets, &cookie, &s, BPF_NOEXIST)) {
		stat_inc(BUSTED_STAT_UNTRACKED);
		return;
	}
	if (bpf_map_update_elem(&traffic, &cookie, &zero, BPF_NOEXIST)) {
		bpf_map_delete_elem(&sockets, &cookie);
		stat_inc(BUSTED_STAT_UNTRACKED);
	}
}

static __always_inline void emit(const struct sock *sk, __u64 cookie, struct busted_sock *s,
				 __u32 kind)
{
	struct busted_traffic *t = NULL;
	struct busted_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(BUSTED_STAT_LOST);
		return;
	}
	e->kind = kind;
	e->_pad0 = 0;
	e->cookie = cookie;
	e->ts_ns = bpf_ktime_get_ns();
	e->owner = s->owner;
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	fill_addrs(e, sk);
	e->error = kind == BUSTED_EV_FAIL ? BPF_CORE_READ(sk, sk_err) : 0;
	e->connect_ns = s->connect_ns;
	e->tx = 0;
	e->rx = 0;
	if (kind == BUSTED_EV_CLOSE) {
		t = bpf_map_lookup_elem(&traffic, &cookie);
		if (t) {
			e->tx = t->tx;
			e->rx = t->rx;
		}
	}
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int handle_state(const struct sock *sk, int oldstate, int newstate)
{
	struct busted_sock *s;
	__u64 cookie;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	cookie = bpf_get_socket_cookie((void *)sk);
	if (newstate == BUSTED_TCP_SYN_SENT) {
		on_syn_sent(sk, cookie);
		return 0;
	}
	if (newstate != BUSTED_TCP_ESTABLISHED && newstate != BUSTED_TCP_CLOSE)
		return 0;
	s = bpf_map_lookup_elem(&sockets, &cookie);
	if (!s)
		return 0;
	if (newstate == BUSTED_TCP_ESTABLISHED) {
		if (oldstate == BUSTED_TCP_SYN_SENT)
			emit(sk, cookie, s, BUSTED_EV_CONNECT);
		return 0;
	}
	/* CLOSE: straight from SYN_SENT means the connect never completed */
	emit(sk, cookie, s, oldstate == BUSTED_TCP_SYN_SENT ? BUSTED_EV_FAIL : BUSTED_EV_CLOSE);
	bpf_map_delete_elem(&sockets, &cookie);
	bpf_map_delete_elem(&traffic, &cookie);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(busted_set_state, const struct sock *sk, int oldstate, int newstate)
{
	return handle_state(sk, oldstate, newstate);
}

static __always_inline void count_bytes(struct sock *sk, int ret, int is_rx)
{
	struct busted_traffic *t;
	__u64 cookie;

	if (ret <= 0)
		return;
	cookie = bpf_get_socket_cookie(sk);
	t = bpf_map_lookup_elem(&traffic, &cookie);
	if (!t)
		return;
	if (is_rx)
		__sync_fetch_and_add(&t->rx, ret);
	else
		__sync_fetch_and_add(&t->tx, ret);
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
