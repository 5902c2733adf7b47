"""SPE benchmarks: each module prints a JSON report and writes bench/results/<name>.json."""
