"""The benchmark: a grid of methods x tasks x seeds run as `prunepeft` child processes, then its table and plots.

It imports from ``common``, ``method`` and ``handover`` (for reading results), never from the cli.
"""
