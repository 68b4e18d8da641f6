"""The ``btfgen`` command line.

Exit codes: 0 success; 1 bad input (one line ``btfgen: FILE: problem`` on
stderr); 2 usage error (argparse); 70 a bug in btfgen (one line naming the
exception; set ``BTFGEN_TRACEBACK=1`` to see the traceback).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NoReturn

from btfgen.errors import BtfgenError

if TYPE_CHECKING:
    from btfgen.gen.options import GenOptions


class Output:
    """What a command prints, in chunks, and what it built to print it.

    ``built`` is kept alive until the ``btfgen`` script exits, which then frees
    nothing (see :func:`script`).
    """

    def __init__(self, chunks: Iterable[str], built: object = None) -> None:
        self.chunks = chunks
        self.built = built


def _cmd_dump(args: argparse.Namespace) -> str | Output:
    from btfgen.elf.reader import read_btf

    btf = read_btf(args.file, args.base)
    if args.format == "raw":
        from btfgen.dump.raw import iter_raw

        # Written as it is formatted: the whole text of vmlinux is ~20 MB.
        return Output(iter_raw(btf), built=btf)
    if args.format == "c":
        from btfgen.dump.c import format_c

        return format_c(btf)
    from btfgen.dump.json import format_json

    return format_json(btf)


def _cmd_info(args: argparse.Namespace) -> str:
    from btfgen.discovery.resolve import parse_event_args
    from btfgen.dump.info import format_info
    from btfgen.elf.reader import read_input

    events = parse_event_args(args.event)
    base = read_input(args.base).btf if args.base else None
    return format_info(read_input(args.file, base), events, args.header)


def _gen_options(args: argparse.Namespace) -> GenOptions:
    from btfgen.discovery.resolve import parse_event_args
    from btfgen.gen.options import GenOptions

    return GenOptions(name=args.name, types=tuple(args.type), base=args.base,
                      events=parse_event_args(args.event), header=args.header,
                      keep_debug=args.keep_debug)


def _cmd_gen(args: argparse.Namespace) -> str:
    from btfgen.gen.module import generate_to_file

    _, messages = generate_to_file(args.file, _gen_options(args), args.output)
    for line in messages:
        print(f"btfgen: {args.file}: {line}", file=sys.stderr)
    return ""


def _cmd_check(args: argparse.Namespace) -> str:
    from btfgen.gen.check import StaleModuleError, check_module

    options = _gen_options(args)
    fix = options.command_line(args.file, args.output)
    try:
        result = check_module(args.file, args.output, options)
    except StaleModuleError as e:
        missing = StaleModuleError(f"{e} -- create it with: {fix}")
        missing.path = e.path
        raise missing from None
    if result.fresh:
        return f"{args.output}: up to date with {args.file}\n"
    for line in result.excerpt:
        print(f"  {line}", file=sys.stderr)
    err = StaleModuleError(f"out of date with {args.file}: {result.summary}"
                           f" -- regenerate with: {fix}")
    err.path = args.output
    raise err


def _record_options(p: argparse.ArgumentParser) -> None:
    """``--event``/``--header``: the record types of perf/ring buffer maps."""
    p.add_argument("--event", action="append", default=[], metavar="MAP=CTYPE",
                   help="records of perf/ring buffer map MAP are CTYPE, e.g."
                   " events='struct event' (repeatable)")
    p.add_argument("--header", metavar="FILE.h",
                   help="C header declaring record types the object's BTF lacks"
                   " (stripped objects); see --event")


def _generation_options(p: argparse.ArgumentParser) -> None:
    """What decides a generated module's text: shared by gen and check."""
    p.add_argument("file", help=".bpf.o object or raw BTF file")
    p.add_argument("--name", help="module stem used for the skeleton class name")
    p.add_argument("--type", action="append", default=[], metavar="CTYPE",
                   help="also emit this C type, e.g. 'struct sock' (repeatable)")
    p.add_argument("--base", help="base BTF for split BTF input")
    p.add_argument("--keep-debug", action="store_true",
                   help="embed the object with its DWARF (.debug_* sections); by default"
                   " they are read for record types, then left out of the module")
    _record_options(p)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for every subcommand."""
    p = argparse.ArgumentParser(
        prog="btfgen",
        description="Typed Python from the BTF of compiled eBPF objects.",
        epilog="examples:\n  btfgen info prog.bpf.o\n  btfgen gen prog.bpf.o -o pkg/prog_skel.py\n"
        "  btfgen check prog.bpf.o -o pkg/prog_skel.py   # in CI\n"
        "  btfgen dump prog.bpf.o --format c\n"
        "`btfgen COMMAND --help` shows each command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=_VersionAction, nargs=0,
                   help="show btfgen's version, its compiled parts and libbpf, and exit")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser(
        "dump", help="print the BTF of an object or raw BTF file",
        epilog="examples:\n  btfgen dump prog.bpf.o\n  btfgen dump /sys/kernel/btf/vmlinux"
        " --format c\n  btfgen dump /sys/kernel/btf/nf_tables --base /sys/kernel/btf/vmlinux",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("file", help=".bpf.o object or raw BTF file")
    d.add_argument("--format", choices=("raw", "c", "json"), default="raw",
                   help="raw: as `bpftool btf dump ... format raw`; c: C declarations;"
                   " json: the model")
    d.add_argument("--base", help="base BTF for split BTF (e.g. /sys/kernel/btf/vmlinux)")
    d.set_defaults(func=_cmd_dump)

    i = sub.add_parser(
        "info", help="programs, maps and globals of an object",
        epilog="examples:\n  btfgen info prog.bpf.o\n"
        "  btfgen info /sys/kernel/btf/nf_tables --base /sys/kernel/btf/vmlinux",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    i.add_argument("file", help=".bpf.o object or raw BTF file")
    i.add_argument("--base", help="base BTF for split BTF (e.g. /sys/kernel/btf/vmlinux)")
    _record_options(i)
    i.set_defaults(func=_cmd_info)

    g = sub.add_parser(
        "gen", help="write a typed Python module for an object",
        epilog="examples:\n  btfgen gen prog.bpf.o                 # writes ./prog_skel.py\n"
        "  btfgen gen prog.bpf.o -o pkg/prog_skel.py --type 'struct event'\n"
        "  btfgen gen /sys/kernel/btf/vmlinux --type 'struct sock' -o sock.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _generation_options(g)
    g.add_argument("-o", "--output", help="output path (default ./<stem>_skel.py)")
    g.set_defaults(func=_cmd_gen)

    c = sub.add_parser(
        "check", help="exit 1 if a generated module differs from what gen would write now",
        description="Generate in memory and compare with the module on disk (for CI of"
        " projects that commit generated modules): exit 0 when identical, 1 with a short"
        " diff summary when stale or missing.  Takes the same options as gen.",
        epilog="examples:\n  btfgen check prog.bpf.o -o pkg/prog_skel.py\n"
        "  btfgen check prog.bpf.o -o pkg/prog_skel.py --type 'struct event'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _generation_options(c)
    c.add_argument("-o", "--output", required=True, help="the committed module to check")
    c.set_defaults(func=_cmd_check)

    dr = sub.add_parser(
        "doctor", help="what this installation and machine have (for bug reports)",
        description="Report btfgen's version and compiled parts, libbpf's version and path,"
        " kernel BTF, tracefs, this process's privileges, and the clang and"
        " bpftool a build would use.  Always exits 0.",
    )
    dr.set_defaults(func=_cmd_doctor, file="doctor")

    b = sub.add_parser(
        "build", help="recompile and regenerate [tool.btfgen] modules in place (editable installs)",
        description="In the folder of a project's pyproject.toml: compile each"
        " [[tool.btfgen.skeletons]] source and regenerate its module where an editable"
        " install (pip install -e .) imports it from, without reinstalling.  Prints each"
        " module written; nothing is written unless every entry built.",
    )
    b.set_defaults(func=_cmd_build, file="pyproject.toml")
    return p


def _cmd_build(args: argparse.Namespace) -> str:
    from btfgen.project.inplace import build_in_place

    try:
        written = build_in_place()
    except BtfgenError as e:
        # a compiler's own messages as they are, then the one line
        first, _, details = str(e).partition("\n")
        if details:
            print(details, file=sys.stderr)
        short = type(e)(first)
        short.path = e.path
        raise short from None
    return "".join(f"{module} (from {source})\n" for source, module in written)


def _cmd_doctor(args: argparse.Namespace) -> str:
    from btfgen.doctor import doctor_report

    return doctor_report()


class _VersionAction(argparse.Action):
    """``--version``: computed only when asked (it loads libbpf)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from btfgen.doctor import version_report

        _write((version_report(),))
        parser.exit()


EXIT_BUG = 70  # EX_SOFTWARE


def _report(path: str, message: str) -> None:
    """One line on stderr, whatever the message holds."""
    line = " ".join(message.split()) or "error"
    print(f"btfgen: {path}: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    code, _ = _run(argv)
    return code


def script() -> NoReturn:
    """The ``btfgen`` command: :func:`main`, then an exit that frees nothing.

    Freeing what a command built object by object (vmlinux: ~300k objects,
    ~40 ms of a ~0.6 s dump) takes longer than the kernel takes to drop the
    whole process; the output is flushed first.
    """
    code, built = _run(None)  # built stays referenced until os._exit()
    # os._exit() skips the flush of Python's own buffers: anything a command
    # printed without _write() would be lost.
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.stderr.flush()
    os._exit(code)


def _run(argv: Sequence[str] | None) -> tuple[int, object]:
    """Run one command and write its output: the exit code, and what the
    command built (for :func:`script`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # A command builds up to hundreds of thousands of long-lived objects (vmlinux:
    # ~300k) and leaves no garbage cycles that matter before it ends; the cyclic
    # collector would only scan them again and again.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    built: object = None
    try:
        out = args.func(args)
        if isinstance(out, Output):
            built = out
            _write(out.chunks)
        elif out:
            _write((out,))
    except BrokenPipeError:
        return 0, built
    except BtfgenError as e:
        _report(e.path or args.file, str(e))
        return 1, built
    except (MemoryError, RecursionError) as e:
        _report(args.file, f"input too large or too deeply nested ({type(e).__name__})")
        return 1, built
    except KeyboardInterrupt:
        return 130, built
    except Exception as e:
        if os.environ.get("BTFGEN_TRACEBACK"):
            raise
        _report(args.file, f"internal error: {type(e).__name__}: {e} -- this is a btfgen bug,"
                " please report it (BTFGEN_TRACEBACK=1 shows the traceback)")
        return EXIT_BUG, built
    finally:
        if gc_was_enabled:
            gc.enable()
    return 0, built


def _write(chunks: Iterable[str]) -> None:
    """Write text to stdout as bytes; names from BTF may be any bytes, which
    travel as surrogateescape."""
    write = sys.stdout.buffer.write
    for chunk in chunks:
        write(chunk.encode("utf-8", "surrogateescape"))
    sys.stdout.flush()


if __name__ == "__main__":
    script()
