// SPDX-License-Identifier: GPL-2.0
/*
 * Empty programs on every hook busted attaches at start: the same tracepoints and cgroup hooks,
 * doing nothing (the cgroup ones allow). Built with clang at bench time; not part of busted.
 *
 * Two uses in the bench:
 *   - the floor of `npm run bench -- --bpf-stats`: with kernel.bpf_stats_enabled the kernel reads
 *     the clock before and after every program run; what an empty program shows is that overhead
 *     (plus the call), the part of each hook's ns/run that no program can remove;
 *   - `bench/attach-cost.ts --floor`: what merely having a program on these hooks costs the churn
 *     (the kernel's dispatch to it, for every socket), the part of busted's kernel share that no
 *     change to busted's programs can remove.
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

SEC("tp_btf/inet_sk_error_report")
int floor_sk_error(void *ctx)
{
	return 0;
}

SEC("tp_btf/sched_process_exec")
int floor_exec(void *ctx)
{
	return 0;
}

SEC("cgroup/connect4")
int floor_connect4(void *ctx)
{
	return 1;
}

SEC("cgroup/connect6")
int floor_connect6(void *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg4")
int floor_sendmsg4(void *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg6")
int floor_sendmsg6(void *ctx)
{
	return 1;
}

SEC("cgroup/sock_release")
int floor_release(void *ctx)
{
	return 1;
}
