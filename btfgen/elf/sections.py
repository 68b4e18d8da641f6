"""Program types from ELF section names, following libbpf's ``section_defs``.

A definition ending in ``+`` matches the name exactly or followed by
``/extras`` (``kprobe/do_unlinkat``); one ending in ``/`` needs extras; any
other must match exactly.  The first matching definition wins, so more
specific ones come first, as in libbpf.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The section of ``extern`` kernel config variables (CONFIG_*), filled by libbpf.
KCONFIG_SEC = ".kconfig"

#: (section definition, BPF_PROG_TYPE_* name without the prefix)
SECTION_DEFS: tuple[tuple[str, str], ...] = (
    ("socket", "SOCKET_FILTER"),
    ("sk_reuseport/migrate", "SK_REUSEPORT"),
    ("sk_reuseport", "SK_REUSEPORT"),
    ("kprobe+", "KPROBE"),
    ("uprobe+", "KPROBE"),
    ("uprobe.s+", "KPROBE"),
    ("kretprobe+", "KPROBE"),
    ("uretprobe+", "KPROBE"),
    ("uretprobe.s+", "KPROBE"),
    ("kprobe.multi+", "KPROBE"),
    ("kretprobe.multi+", "KPROBE"),
    ("kprobe.session+", "KPROBE"),
    ("uprobe.multi+", "KPROBE"),
    ("uretprobe.multi+", "KPROBE"),
    ("uprobe.multi.s+", "KPROBE"),
    ("uretprobe.multi.s+", "KPROBE"),
    ("uprobe.session+", "KPROBE"),
    ("uprobe.session.s+", "KPROBE"),
    ("ksyscall+", "KPROBE"),
    ("kretsyscall+", "KPROBE"),
    ("usdt+", "KPROBE"),
    ("usdt.s+", "KPROBE"),
    ("tc/ingress", "SCHED_CLS"),
    ("tc/egress", "SCHED_CLS"),
    ("tcx/ingress", "SCHED_CLS"),
    ("tcx/egress", "SCHED_CLS"),
    ("tc", "SCHED_CLS"),
    ("classifier", "SCHED_CLS"),
    ("action", "SCHED_ACT"),
    ("netkit/primary", "SCHED_CLS"),
    ("netkit/peer", "SCHED_CLS"),
    ("tracepoint+", "TRACEPOINT"),
    ("tp+", "TRACEPOINT"),
    ("raw_tracepoint+", "RAW_TRACEPOINT"),
    ("raw_tp+", "RAW_TRACEPOINT"),
    ("raw_tracepoint.w+", "RAW_TRACEPOINT_WRITABLE"),
    ("raw_tp.w+", "RAW_TRACEPOINT_WRITABLE"),
    ("tp_btf+", "TRACING"),
    ("fentry+", "TRACING"),
    ("fmod_ret+", "TRACING"),
    ("fexit+", "TRACING"),
    ("fentry.s+", "TRACING"),
    ("fmod_ret.s+", "TRACING"),
    ("fexit.s+", "TRACING"),
    ("freplace+", "EXT"),
    ("lsm+", "LSM"),
    ("lsm.s+", "LSM"),
    ("lsm_cgroup+", "LSM"),
    ("iter+", "TRACING"),
    ("iter.s+", "TRACING"),
    ("syscall", "SYSCALL"),
    ("xdp.frags/devmap", "XDP"),
    ("xdp/devmap", "XDP"),
    ("xdp.frags/cpumap", "XDP"),
    ("xdp/cpumap", "XDP"),
    ("xdp.frags", "XDP"),
    ("xdp", "XDP"),
    ("perf_event", "PERF_EVENT"),
    ("lwt_in", "LWT_IN"),
    ("lwt_out", "LWT_OUT"),
    ("lwt_xmit", "LWT_XMIT"),
    ("lwt_seg6local", "LWT_SEG6LOCAL"),
    ("sockops", "SOCK_OPS"),
    ("sk_skb/stream_parser", "SK_SKB"),
    ("sk_skb/stream_verdict", "SK_SKB"),
    ("sk_skb/verdict", "SK_SKB"),
    ("sk_skb", "SK_SKB"),
    ("sk_msg", "SK_MSG"),
    ("lirc_mode2", "LIRC_MODE2"),
    ("flow_dissector", "FLOW_DISSECTOR"),
    ("cgroup_skb/ingress", "CGROUP_SKB"),
    ("cgroup_skb/egress", "CGROUP_SKB"),
    ("cgroup/skb", "CGROUP_SKB"),
    ("cgroup/sock_create", "CGROUP_SOCK"),
    ("cgroup/sock_release", "CGROUP_SOCK"),
    ("cgroup/sock", "CGROUP_SOCK"),
    ("cgroup/post_bind4", "CGROUP_SOCK"),
    ("cgroup/post_bind6", "CGROUP_SOCK"),
    ("cgroup/bind4", "CGROUP_SOCK_ADDR"),
    ("cgroup/bind6", "CGROUP_SOCK_ADDR"),
    ("cgroup/connect4", "CGROUP_SOCK_ADDR"),
    ("cgroup/connect6", "CGROUP_SOCK_ADDR"),
    ("cgroup/connect_unix", "CGROUP_SOCK_ADDR"),
    ("cgroup/sendmsg4", "CGROUP_SOCK_ADDR"),
    ("cgroup/sendmsg6", "CGROUP_SOCK_ADDR"),
    ("cgroup/sendmsg_unix", "CGROUP_SOCK_ADDR"),
    ("cgroup/recvmsg4", "CGROUP_SOCK_ADDR"),
    ("cgroup/recvmsg6", "CGROUP_SOCK_ADDR"),
    ("cgroup/recvmsg_unix", "CGROUP_SOCK_ADDR"),
    ("cgroup/getpeername4", "CGROUP_SOCK_ADDR"),
    ("cgroup/getpeername6", "CGROUP_SOCK_ADDR"),
    ("cgroup/getpeername_unix", "CGROUP_SOCK_ADDR"),
    ("cgroup/getsockname4", "CGROUP_SOCK_ADDR"),
    ("cgroup/getsockname6", "CGROUP_SOCK_ADDR"),
    ("cgroup/getsockname_unix", "CGROUP_SOCK_ADDR"),
    ("cgroup/sysctl", "CGROUP_SYSCTL"),
    ("cgroup/getsockopt", "CGROUP_SOCKOPT"),
    ("cgroup/setsockopt", "CGROUP_SOCKOPT"),
    ("cgroup/dev", "CGROUP_DEVICE"),
    ("struct_ops+", "STRUCT_OPS"),
    ("struct_ops.s+", "STRUCT_OPS"),
    ("sk_lookup", "SK_LOOKUP"),
    ("netfilter", "NETFILTER"),
)

#: Spellings that libbpf treats as the same kind.
_ALIASES = {"tp": "tracepoint", "raw_tp": "raw_tracepoint", "raw_tp.w": "raw_tracepoint.w",
            "classifier": "tc"}


@dataclass(frozen=True)
class SectionKind:
    """What a program's section name says about it."""

    #: The section definition's kind, e.g. "kprobe", "tracepoint", "xdp",
    #: "cgroup_skb"; "" when no definition matches (libbpf would refuse it).
    attach_kind: str
    #: What follows ``kind/`` in the section name (e.g. "syscalls/sys_enter_open").
    attach_target: str
    #: BPF_PROG_TYPE_* without the prefix ("KPROBE"), or "UNSPEC".
    prog_type: str
    #: A ``.s`` definition (sleepable program).
    sleepable: bool


def _matches(definition: str, name: str) -> bool:
    if definition.endswith("/"):
        return name.startswith(definition)
    if definition.endswith("+"):
        stem = definition[:-1]
        return name == stem or name.startswith(stem + "/")
    return name == definition


def classify_section(name: str) -> SectionKind:
    """The program kind libbpf would give a program in section ``name``."""
    for definition, prog_type in SECTION_DEFS:
        if not _matches(definition, name):
            continue
        head, _, target = name.partition("/")
        sleepable = head.endswith(".s")
        if sleepable:
            head = head[:-2]
        return SectionKind(_ALIASES.get(head, head), target, prog_type, sleepable)
    return SectionKind("", "", "UNSPEC", False)
