"""Fuzz worker: runs btfgen's whole pipeline, in process, on one input at a time.

Started by :class:`fuzz.harness.Worker` as ``python worker.py MEM_MB TIMEOUT_S``.
It reads frames from stdin -- ``u32 header length, JSON header, u32 data
length, data`` -- and answers each with one JSON line on its real stdout:

``{"status": "ok" | "error" | "bug" | "timeout" | "memory", "stage": ...,
"error": ..., "trace": ..., "ms": ...}``

* ``ok``: every stage produced output (or stopped with a BtfgenError after
  another stage produced output -- see ``errors``);
* ``error``: the input was refused with a :class:`btfgen.errors.BtfgenError`
  (what the CLI prints as one line, exit 1);
* ``bug``: any other exception, or output the CLI could not write, or a
  generated module that does not compile/import/round-trip;
* ``timeout`` / ``memory``: the per-input time or address-space bound was hit.

Stages: ``dump`` (read_btf + raw/C/JSON), ``info`` (read_input + format_info),
``gen`` (generate_module), ``module`` (compile, exec as a module, decode and
encode every record class).  Address space is limited with RLIMIT_AS and time
with an interval timer, so a lying count or a reference loop shows up as
``memory``/``timeout`` instead of taking the machine down.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import types
from typing import Any

#: Record classes at most this large get decoded/encoded in the module stage.
MAX_ROUNDTRIP_SIZE = 1 << 16
#: Raw BTF has no roots: at most this many named types go to ``gen --type``.
MAX_RAW_ROOTS = 12


class Timeout(BaseException):
    """The per-input time bound (BaseException: code under test must not catch it)."""


def _on_alarm(_sig: int, _frame: object) -> None:
    raise Timeout()


def _encodable(text: str) -> None:
    """What the CLI does with output; raises UnicodeEncodeError if it cannot."""
    text.encode("utf-8", "surrogateescape")


def _check_message(msg: str) -> None:
    """What the CLI prints must be one harmless line: not empty, and no control
    characters (terminal escapes from a hostile name) once whitespace is joined.
    Lone surrogates (bytes that are not UTF-8) print as backslash escapes."""
    line = " ".join(msg.split())
    if not line:
        raise AssertionError("BtfgenError with an empty message")
    bad = [ch for ch in line if not ch.isprintable() and not 0xDC80 <= ord(ch) <= 0xDCFF]
    if bad:
        raise AssertionError(f"control characters {bad!r} in the error line {line!r}")


def _raw_roots(btf: Any) -> list[str]:
    from btfgen.btf_model import Enum, Enum64, Struct, Typedef, Union

    specs = []
    for t in btf.types:
        if not t.name:
            continue
        if isinstance(t, Struct):
            specs.append(f"struct {t.name}")
        elif isinstance(t, Union):
            specs.append(f"union {t.name}")
        elif isinstance(t, (Enum, Enum64)):
            specs.append(f"enum {t.name}")
        elif isinstance(t, Typedef):
            specs.append(t.name)
        if len(specs) >= MAX_RAW_ROOTS:
            break
    return specs


def _check_module(text: str, serial: int) -> dict[str, Any]:
    """Compile, import and exercise a generated module."""
    code = compile(text, f"<fuzz module {serial}>", "exec")
    name = f"_btfgen_fuzz_mod_{serial}"
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    try:
        exec(code, mod.__dict__)
        classes = dict(mod.__dict__["TYPES"])
        for export in mod.__dict__["__all__"]:
            if export not in mod.__dict__:
                raise AssertionError(f"__all__ names {export!r}, which is not defined")
        rng = random.Random(serial)
        checked = 0
        for spelling, cls in classes.items():
            if not dataclasses.is_dataclass(cls):
                continue  # an IntEnum (whose members may be called SIZE ...)
            size = cls.SIZE
            if size > MAX_ROUNDTRIP_SIZE:
                continue
            zeros = bytes(size)
            back = cls.from_bytes(zeros).to_bytes()
            if back != zeros:
                raise AssertionError(f"{spelling}: zero bytes do not round-trip: {back[:64]!r}")
            noise = rng.randbytes(size)
            enc = cls.from_bytes(noise).to_bytes()
            if len(enc) != size:
                raise AssertionError(f"{spelling}: to_bytes gave {len(enc)} bytes, SIZE {size}")
            # decode(encode(x)) == x, compared as bytes (NaN != NaN as objects)
            again = cls.from_bytes(enc).to_bytes()
            if again != enc:
                raise AssertionError(f"{spelling}: decode/encode is not stable: {enc[:32]!r}"
                                     f" -> {again[:32]!r}")
            checked += 1
        return {"classes": len(classes), "roundtrips": checked}
    finally:
        del sys.modules[name]


def run_one(data: bytes, header: dict[str, Any], serial: int) -> dict[str, Any]:
    """Every stage on ``data``; the result dict described in the module docstring."""
    from btfgen.errors import BtfgenError

    with tempfile.NamedTemporaryFile(prefix="fuzz", suffix=".bpf.o") as f:
        f.write(data)
        f.flush()
        path = f.name
        result: dict[str, Any] = {"status": "ok", "errors": {}}
        stage = "dump"
        try:
            from btfgen.dump.c import format_c
            from btfgen.dump.info import format_info
            from btfgen.dump.json import format_json
            from btfgen.dump.raw import format_raw
            from btfgen.elf.reader import read_btf, read_input
            from btfgen.gen.module import generate_module
            from btfgen.gen.options import GenOptions

            btf = None
            refused = 0
            try:
                btf = read_btf(path)
                for fmt in (format_raw, format_c, format_json):
                    _encodable(fmt(btf))
            except BtfgenError as e:
                result["errors"][stage] = str(e)
                refused += 1
            stage = "info"
            try:
                _encodable(format_info(read_input(path)))
            except BtfgenError as e:
                result["errors"][stage] = str(e)
                refused += 1
            stage = "gen"
            roots = list(header.get("types") or [])
            if not roots and btf is not None and data[:4] != b"\x7fELF":
                roots = _raw_roots(btf)
            text = None
            try:
                text = generate_module(path, GenOptions(types=tuple(roots))).text
                _encodable(text)
            except BtfgenError as e:
                result["errors"][stage] = str(e)
                refused += 1
            if text is not None and header.get("module", True):
                stage = "module"
                result["module"] = _check_module(text, serial)
            if refused == 3:
                result["status"] = "error"
            for msg in result["errors"].values():
                _check_message(msg)
        except Timeout:
            result.update(status="timeout", stage=stage, trace=traceback.format_exc()[-3000:])
        except MemoryError:
            result.update(status="memory", stage=stage, trace=traceback.format_exc()[-3000:])
        except BaseException as e:  # noqa: B036 - everything else is a finding
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            result.update(status="bug", stage=stage, error=f"{type(e).__name__}: {e}"[:2000],
                          trace=traceback.format_exc()[-6000:])
        return result


def _read_exact(stream: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def main() -> None:
    mem_mb, timeout_s = int(sys.argv[1]), float(sys.argv[2])
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the code under test prints must not corrupt the protocol
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))
    # Import before limiting memory: the limit is for what an input costs.
    import btfgen.dump.c  # noqa: F401
    import btfgen.dump.info  # noqa: F401
    import btfgen.dump.json  # noqa: F401
    import btfgen.dump.raw  # noqa: F401
    import btfgen.elf.reader  # noqa: F401
    import btfgen.gen.module  # noqa: F401

    if mem_mb:
        limit = mem_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _on_alarm)
    stdin = sys.stdin.buffer
    serial = 0
    while True:
        try:
            (hlen,) = struct.unpack("<I", _read_exact(stdin, 4))
            header = json.loads(_read_exact(stdin, hlen))
            (dlen,) = struct.unpack("<I", _read_exact(stdin, 4))
            data = _read_exact(stdin, dlen)
        except EOFError:
            return
        serial += 1
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            result = run_one(data, header, serial)
        except Timeout:
            result = {"status": "timeout", "stage": "?"}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        result["ms"] = round((time.perf_counter() - t0) * 1000, 2)
        out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
