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

.PHONY: all setup system-deps venv demo test test-full test-versions bench bench-deps lint \
        examples clean wheel sample-wheel

# The full suite runs on .venv's Python (3.11 here); a quick tier runs on each of PYTHONS,
# each in its own .venv-X.Y (kept between runs).  A missing interpreter fails `make test`
# with what to do: `pyenv install X.Y`, or PYTHONS="..." to test fewer versions.
PYTHONS    ?= 3.10 3.12 3.13
PYENV_ROOT ?= $(HOME)/.pyenv
# generation, decoding, the runtime's messages, every module imports, one live perf and one
# live ring-buffer test
QUICK_TESTS := tests/gen/test_gen_records.py tests/gen/test_gen_golden.py tests/btf/test_btf_parse.py \
  tests/test_runtime_messages.py \
  tests/project/test_install.py::test_every_module_imports_on_this_python \
  tests/test_perf_drain.py::test_direct_path_callback_exceptions \
  tests/test_ringbuf_drain.py::test_callback_exceptions_first_raised_others_counted

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
INSTALL_DEPS := pyproject.toml setup.py btfgen/runtime/_drain.c btfgen/runtime/_records.c \
                btfgen/_btf_decode.c

# compat: a .pth path entry, so mypy (and other tools) see the package too
$(VENV)/.installed: $(INSTALL_DEPS)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

# .venv-3.10 etc.: pyenv's newest X.Y, else pythonX.Y on PATH
.venv-%/.installed: $(INSTALL_DEPS)
	@py=$$(ls -d $(PYENV_ROOT)/versions/$*.*/bin/python$* 2>/dev/null | sort -V | tail -n 1); \
	if [ -z "$$py" ] && python$* -c '' 2>/dev/null; then py=$$(command -v python$*); fi; \
	if [ -z "$$py" ]; then \
	  echo "make: Python $* not found (in $(PYENV_ROOT)/versions/$*.* or as python$* on PATH):" \
	       "install it (pyenv install $*) or leave it out: make test PYTHONS=\"...\"" >&2; \
	  exit 1; fi; \
	echo "creating .venv-$* with $$py"; \
	$$py -m venv .venv-$* && .venv-$*/bin/pip install -q --upgrade pip && \
	.venv-$*/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

venv: $(VENV)/.installed

setup: system-deps venv

examples: setup
	$(MAKE) -C examples

demo: setup examples
	$(PY) examples/demo.py

# Both parts run whatever the first gave; the last line says how each ended.
test: setup
	@$(MAKE) --no-print-directory test-full; full=$$?; \
	$(MAKE) --no-print-directory test-versions; versions=$$?; \
	word() { [ $$1 = 0 ] && echo passed || echo FAILED; }; \
	echo "== make test: full suite on $$($(PY) -c 'import platform; print(platform.python_version())')" \
	     "$$(word $$full); quick tier on $(PYTHONS) $$(word $$versions)"; \
	[ $$full = 0 ] && [ $$versions = 0 ]

test-full: setup
	$(PY) -m pytest -q tests

# One summary line per version: what ran and how it ended.
test-versions: system-deps $(foreach v,$(PYTHONS),.venv-$(v)/.installed)
	@status=0; summary=""; for v in $(PYTHONS); do \
	  py=.venv-$$v/bin/python; ver=$$($$py -c 'import platform; print(platform.python_version())'); \
	  echo "== quick tier on Python $$ver (.venv-$$v)"; \
	  $$py -m pytest -q -p no:cacheprovider $(QUICK_TESTS) | tee .venv-$$v/last-test.log; \
	  rc=$${PIPESTATUS[0]}; [ $$rc = 0 ] || status=1; \
	  summary="$$summary\n  Python $$ver: $$(tail -n 1 .venv-$$v/last-test.log | tr -d '=')"; \
	done; \
	printf "== quick tier (generation, decoding, messages, imports, live perf + ring buffer):$$summary\n"; \
	exit $$status

# Wheels the way a user builds them, with any python3 that has pip (no .venv needed):
# btfgen's own into $(WHEELS), then the sample project, whose build (isolated, as pip does
# it) finds btfgen there.  Install the result with:
#   pip install --find-links dist dist/probe_tool-*.whl
BUILD_PYTHON ?= python3
WHEELS       ?= dist

wheel:
	$(BUILD_PYTHON) -m pip wheel -q --no-deps -w $(WHEELS) .

sample-wheel: system-deps wheel
	$(BUILD_PYTHON) -m pip wheel -q --no-deps --find-links $(WHEELS) -w $(WHEELS) \
	  examples/sample_project
	@ls $(WHEELS)/probe_tool-*.whl

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
	# .venv and .venv-X.Y are kept: rm -rf .venv .venv-* to rebuild them
	$(MAKE) -C examples clean
