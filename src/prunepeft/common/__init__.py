"""What every part shares: settings files and their errors, the distributed rank, the progress lines, the signals.

It imports nothing from the rest of prunepeft.
"""
