/* Every map, global-data and section feature the object reader handles (tests/test_object_reader.py). */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event { __u32 pid; char comm[16]; __u64 ts; };
typedef __u32 key_t;

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} inner1 SEC(".maps"), inner2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, key_t);
	__type(value, struct event);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_map);
} outer SEC(".maps") = { .values = { &inner1, &inner2 } };

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int (void *));
} jmp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(value_size, 8);
	__uint(max_entries, 16);
	__uint(map_extra, 3);
	__uint(numa_node, 1);
} bloom SEC(".maps");

#ifndef NO_LEGACY_MAP /* libbpf >= 1.0 refuses these, so bpftool gen skeleton needs it off */
struct legacy_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct legacy_map_def SEC("maps") old_map = {
	.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 3, .map_flags = 0,
};
/* iproute2's BPF_ANNOTATE_KV_PAIR: key/value types of a legacy map. */
struct ____btf_map_old_map { __u32 key; __u64 value; };
struct ____btf_map_old_map ____btf_map_old_map SEC(".maps.old_map") = {};
#endif

int counter = 5;
__u64 big_data[4] = {1, 2, 3, 4};
char aligned_buf[3] __attribute__((aligned(64))) = {1, 2, 3};
static volatile int hidden_static = 7;
__u32 hidden_var __attribute__((visibility("hidden"))) = 3;
const volatile int cfg_pid = 42;
const volatile char cfg_name[5] = "abcd";
__u64 zeroed;
struct event bss_event;
int custom_var SEC(".data.custom") = 9;
const volatile long ro_custom SEC(".rodata.custom") = 11;
extern int LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig __weak;
extern __u64 CONFIG_HZ __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[8] __kconfig __weak;

struct my_ops { int (*fn)(unsigned long long *ctx); int x; };
SEC("struct_ops/my_fn") int my_fn(unsigned long long *ctx) { return 0; }
SEC(".struct_ops") struct my_ops ops = { .fn = (void *)my_fn, .x = 1 };

char LICENSE[] SEC("license") = "Dual BSD/GPL";
__u32 _version SEC("version") = 0x050a03;

#define USE_ALL() do { counter += hidden_static + hidden_var + cfg_pid + cfg_name[1] + zeroed \
	+ bss_event.pid + custom_var + ro_custom + big_data[1] + aligned_buf[2] \
	+ LINUX_KERNEL_VERSION + CONFIG_BPF_SYSCALL + CONFIG_HZ + CONFIG_DEFAULT_HOSTNAME[0]; \
	hidden_static++; } while (0)

SEC("tracepoint/syscalls/sys_enter_execve") int tp_exec(void *ctx) { USE_ALL(); return 0; }
SEC("tp/sched/sched_switch") int tp_switch(void *ctx) { return 0; }
SEC("kprobe/do_unlinkat") int kp_a(void *ctx) { return 0; }
SEC("kprobe/do_unlinkat") int kp_b(void *ctx) { return 1; }
SEC("kretprobe/do_unlinkat") int krp(void *ctx) { return 0; }
SEC("uprobe") int up(void *ctx) { return 0; }
SEC("ksyscall/openat") int ks(void *ctx) { return 0; }
SEC("fentry.s/do_unlinkat") int fs(void *ctx) { return 0; }
SEC("fexit/do_unlinkat") int fx(void *ctx) { return 0; }
SEC("fmod_ret/do_unlinkat") int fm(void *ctx) { return 0; }
SEC("lsm/file_open") int lsm_open(void *ctx) { return 0; }
SEC("tp_btf/sched_switch") int tpbtf(void *ctx) { return 0; }
SEC("raw_tp/sys_enter") int rawtp(void *ctx) { return 0; }
SEC("xdp") int xdp_prog(struct xdp_md *ctx) { return XDP_PASS; }
SEC("tc") int tc_prog(struct __sk_buff *skb) { return 0; }
SEC("classifier") int cls_prog(struct __sk_buff *skb) { return 0; }
SEC("socket") int sock_prog(struct __sk_buff *skb) { return 0; }
SEC("cgroup_skb/ingress") int cg_in(struct __sk_buff *skb) { return 1; }
SEC("perf_event") int pe(void *ctx) { return 0; }
SEC("iter/task") int it(void *ctx) { return 0; }
SEC("sk_msg") int skmsg(void *ctx) { return 0; }
SEC("weird_section") int weird(void *ctx) { return 0; }
