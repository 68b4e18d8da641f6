"""Fuzzing support: a bounded worker process that runs the whole pipeline on
one input at a time (:mod:`fuzz.worker`) and the client that drives it
(:mod:`fuzz.harness`)."""
