"""Handing a trained configuration over: load it back, export it to peft or merge it, predict, report.

It imports from ``common``, ``data`` and ``method``, never from the runs, the benchmark or the cli.
"""
