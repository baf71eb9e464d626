"""Task data: built-in corpora, GLUE, users' files and instruction data, split three ways, tokenised, scored.

It imports only from ``prunepeft.common``; everything else imports from it (start at ``data.load.load_task``).
"""
