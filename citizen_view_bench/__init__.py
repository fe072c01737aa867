"""Benchmarks beside the product: wall time, throughput, peak memory and accuracy (`citizen-view bench ...`).

Installed with the `[bench]` extra; the domain package never imports it.
"""
