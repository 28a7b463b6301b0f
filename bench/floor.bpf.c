// SPDX-License-Identifier: GPL-2.0
/*
 * The floor of `npm run bench -- --bpf-stats`: empty programs on the tracepoints busted's
 * per-send, per-receive and per-state-change hooks use. With kernel.bpf_stats_enabled the kernel
 * reads the clock before and after every program run; what an empty program shows is that
 * overhead (plus the call), the part of each hook's ns/run that no program can remove.
 * Built by bench/run.ts with clang at bench time; not part of busted.
 */
#define SEC(name) __attribute__((section(name), used))

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sock_send_length")
int floor_send(void *ctx)
{
	return 0;
}

SEC("tp_btf/sock_recv_length")
int floor_recv(void *ctx)
{
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int floor_set_state(void *ctx)
{
	return 0;
}
