"""Benchmark and stress harness: `make bench`, `make stress` (results in bench/results/)."""
