"""YCSB-style workloads for the harness: generators, property files, CoreWorkload, measurements."""
