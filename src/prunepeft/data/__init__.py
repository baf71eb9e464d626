"""Task data: built-in corpora, GLUE, users' files and instruction data, split three ways, tokenised, scored.

It may import only from ``prunepeft.common``; the runs, the cli and ``handover.predict`` import from it (start at
``data.load.load_task``).
"""
