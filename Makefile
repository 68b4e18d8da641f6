# btfgen: `make demo` runs the bundled example, `make test` runs the tests.
# Both install what is missing first (Debian packages as root, a .venv with the package).

SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
APT_PACKAGES := clang clang-19 llvm bpftool libbpf-dev libbpf-tools gcc make iproute2 python3-dev \
                systemtap-sdt-dev python3-bpfcc
# Command each package provides, to skip apt when all are present.
APT_PROBES := clang clang-19 llvm-strip bpftool gcc ip /usr/include/bpf/libbpf.h /usr/sbin/execsnoop \
              python3-config /usr/include/$(shell uname -m)-linux-gnu/sys/sdt.h \
              /usr/lib/python3/dist-packages/bcc/table.py

.PHONY: all setup system-deps venv demo test bench bench-deps lint examples clean

all: test

system-deps:
	@missing=0; for p in $(APT_PROBES); do \
	  if [ "$${p#/}" != "$$p" ]; then [ -e "$$p" ] || missing=1; \
	  else command -v $$p >/dev/null 2>&1 || missing=1; fi; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing Debian packages: $(APT_PACKAGES)"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

# setup.py and the C files: btfgen's compiled parts are built at install.
$(VENV)/.installed: pyproject.toml setup.py btfgen/runtime/_drain.c btfgen/runtime/_records.c \
		btfgen/_btf_decode.c
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# compat: a .pth path entry, so mypy (and other tools) see the package too
	$(VENV)/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

venv: $(VENV)/.installed

setup: system-deps venv

examples: setup
	$(MAKE) -C examples

demo: setup examples
	$(PY) examples/demo.py

test: setup
	$(PY) -m pytest -q tests

# bcc (the reference of benchmarks/bench_perf.py) needs python3-bpfcc and kernel headers;
# without them the benchmark runs and says bcc is unavailable.
BENCH_APT_PACKAGES := python3-bpfcc linux-headers-amd64

bench-deps:
	@if ! /usr/bin/python3 -c 'import bcc' 2>/dev/null || ! ls -d /usr/src/linux-headers-*-common >/dev/null 2>&1; then \
	  echo "installing Debian packages for the bcc reference: $(BENCH_APT_PACKAGES)"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BENCH_APT_PACKAGES) >/dev/null \
	    || echo "bench-deps: could not install $(BENCH_APT_PACKAGES); bcc will be skipped"; \
	fi

bench: setup bench-deps
	$(PY) benchmarks/run_all.py

lint: setup
	$(VENV)/bin/ruff check btfgen tests benchmarks examples
	$(VENV)/bin/mypy btfgen

clean:
	rm -rf build dist *.egg-info .pytest_cache
	$(MAKE) -C examples clean
