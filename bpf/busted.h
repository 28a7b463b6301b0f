/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * busted kernel/user ABI. Shared by bpf/busted.bpf.c and decoded by src/bpf/abi.ts;
 * test/unit/abi.test.ts checks every size and offset below against the TypeScript side.
 * Fixed-width types only, explicit padding, `kind` first in every ring-buffer record.
 */
#ifndef BUSTED_H
#define BUSTED_H

#define BUSTED_COMM_LEN 16

/* Ring-buffer record kinds. */
enum busted_kind {
	BUSTED_EV_CONNECT = 1, /* outbound TCP connection established */
	BUSTED_EV_FAIL = 2,    /* outbound TCP connect failed or was abandoned */
	BUSTED_EV_CLOSE = 3,   /* tracked TCP connection closed */
};

/* Indexes of the per-CPU `stats` array. */
enum busted_stat {
	BUSTED_STAT_LOST = 0,      /* ring-buffer records that could not be reserved */
	BUSTED_STAT_UNTRACKED = 1, /* connects not tracked because `sockets` was full */
	BUSTED_STAT_MAX = 2,
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
	__u32 _pad0;
	char comm[BUSTED_COMM_LEN];
};

/* Value of the `sockets` hash map, keyed by socket cookie. 72 bytes. */
struct busted_sock {
	struct busted_owner owner;
	__u64 connect_ns; /* bpf_ktime_get_ns() when SYN_SENT was entered */
};

/* Value of the `traffic` hash map, keyed by socket cookie. Counters only grow. 16 bytes. */
struct busted_traffic {
	__u64 tx;
	__u64 rx;
};

/* The one ring-buffer record. 152 bytes. */
struct busted_event {
	__u32 kind;       /* enum busted_kind */
	__u16 family;     /* AF_INET or AF_INET6 */
	__u16 _pad0;
	__u64 cookie;     /* socket cookie: the flow id */
	__u64 ts_ns;      /* bpf_ktime_get_ns() of the event */
	struct busted_owner owner;
	__u8 saddr[16];   /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;      /* host byte order */
	__u16 dport;      /* host byte order */
	__s32 error;      /* BUSTED_EV_FAIL: positive errno from sk_err, 0 if none */
	__u64 connect_ns; /* when SYN_SENT was entered */
	__u64 tx;         /* BUSTED_EV_CLOSE: total bytes sent */
	__u64 rx;         /* BUSTED_EV_CLOSE: total bytes received */
};

#endif /* BUSTED_H */
