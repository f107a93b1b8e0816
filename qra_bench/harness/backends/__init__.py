"""The backends that answer a :class:`~qra_bench.harness.benchmark.Benchmark`'s objective, one module each.

:mod:`~qra_bench.harness.backends.table` looks a configuration up in the results table (and finds tables by
name), :mod:`~qra_bench.harness.backends.surrogate` predicts it with the table's fitted surrogates, and
:mod:`~qra_bench.harness.backends.live` runs a real trial of it with the table's recipe. Each returns an
:class:`~qra_bench.harness.results.Answer`.
"""
