"""Developer tooling: speed benchmarks (utilities/bench)."""
