# Benchmark targets (owned by bench/).
bench:
	@echo "no benchmarks yet"
bench-quick:
	@echo "no benchmarks yet"
