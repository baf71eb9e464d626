"""The jobs the command line runs: a search, a final training, the baselines, and their checkpoints.

It imports from ``common``, ``data``, ``method`` and ``handover``; only the cli imports it (the benchmark runs the
cli as child processes).
"""
