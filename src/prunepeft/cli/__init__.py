"""The `prunepeft` command: flags, checks before any model loads, dispatch to the runs, messages.

It may import from every part; nothing imports from it.
"""
