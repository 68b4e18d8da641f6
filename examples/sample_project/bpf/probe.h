/* Shared between the BPF program and (through btfgen) Python. */
#ifndef PROBE_H
#define PROBE_H

#include <bpf/bpf_core_read.h>

#define PROBE_COMM_LEN 16
#define PROBE_FILENAME_LEN 128

/* The parent's tgid, read with CO-RE so the object loads on any kernel. */
#define BPF_CORE_READ_PPID(task) BPF_CORE_READ(task, real_parent, tgid)

struct probe_event {
	__u64 ts_ns;
	__u32 pid;
	__u32 ppid;
	char comm[PROBE_COMM_LEN];
	char filename[PROBE_FILENAME_LEN];
};

#endif
