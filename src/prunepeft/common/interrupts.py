"""Ctrl-C (SIGINT) and SIGTERM end a run as one exception, ``Interrupted``, that no library can lose.

Python raises KeyboardInterrupt wherever the main thread is when the signal arrives. A library that catches
everything at that moment swallows it and the run goes on: datasets' ``map`` hashes its function (with the
tokenizer in it: a third of a second, seconds on a loaded machine) inside a bare ``except:``, and a Ctrl-C in
that window became "a random hash was used instead" while the final training went on. So:

* a signal is recorded as well as raised, and ``check()`` raises a recorded one again: the Trainer callbacks
  (each step, evaluation and save) and each phase of a run call it, so a swallowed interrupt still ends the run
  at the next step;
* ``map_fingerprints`` computes that hash outside datasets' ``except:`` (once per function rather than once
  per split), so tokenising is no longer a place where an interrupt is lost.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence

_RECEIVED: list[int] = []  # the signals received since handle_interrupts()


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum, frame):
    _RECEIVED.append(signum)
    raise Interrupted(signum)


def handle_interrupts() -> Callable[[], None]:
    """SIGTERM, and SIGINT where it has Python's default handler (a background job started with SIGINT ignored
    keeps ignoring it), raise ``Interrupted`` from now on; returns the function that puts the former handlers
    back. In a thread other than the main one, nothing changes."""
    _RECEIVED.clear()
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signum == signal.SIGINT and signal.getsignal(signum) is not signal.default_int_handler:
            continue
        try:
            previous[signum] = signal.signal(signum, _raise)
        except ValueError:  # not the main thread: signals go to the main thread's handlers anyway
            return lambda: None

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _RECEIVED.clear()

    return restore


def interrupted() -> bool:
    """Whether a signal has arrived (the run is ending, or a library swallowed the exception)."""
    return bool(_RECEIVED)


def check() -> None:
    """Raise ``Interrupted`` again if a signal has arrived: its first exception may have been swallowed."""
    if _RECEIVED:
        raise Interrupted(_RECEIVED[-1])


def map_fingerprints(function, datasets: Sequence, *settings, key=None) -> list[str]:
    """The fingerprint of ``dataset.map(function, ...)`` for each dataset, to pass as its ``new_fingerprint``:
    datasets' hash of the function (the same value each run, so its cache files are found again) computed here,
    where an interrupt propagates, and once for all the datasets. ``settings``: the map's other arguments that
    change its output. ``key``: what determines the function's output, hashed instead of the function itself
    (a closure over a tokenizer pickles the tokenizer's mutable state, which some datasets releases hash
    differently once the tokenizer has been used). A function that cannot be pickled gets a random hash, as
    datasets itself gives it."""
    from datasets.fingerprint import Hasher, generate_random_fingerprint

    try:
        function_hash = Hasher.hash(function if key is None else key)
    except Exception:  # pickle and dill raise many kinds; an interrupt (not an Exception) goes on up
        function_hash = generate_random_fingerprint()
    return [Hasher.hash([ds._fingerprint, function_hash, *settings]) for ds in datasets]
