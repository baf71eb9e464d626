"""Any task by name or path: built-in, GLUE or a user's file, as a :class:`TaskData`."""

from __future__ import annotations

import difflib
from pathlib import Path

from prunepeft.data.builtin import BUILTIN_TASKS, load_builtin
from prunepeft.data.glue import GLUE_TASKS, load_glue
from prunepeft.data.task import DataError, TaskData
from prunepeft.data.user_files import load_user_file, looks_like_path


def load_task(
    task: str,
    *,
    seed: int = 0,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    glue_source: str | None = None,
) -> TaskData:
    """Load a built-in task, a GLUE task, or a user's file/folder as a :class:`TaskData`.

    ``seed`` deliberately does not affect the splits (they use the fixed split seed 0 so every run is
    comparable). The column options apply to users' files only; ``glue_source`` to GLUE tasks only.
    """
    del seed  # splits must not depend on the run seed; the argument stays for a uniform call signature
    key = task.strip()
    if key.lower() in BUILTIN_TASKS:
        return load_builtin(key.lower())
    if key.lower() in GLUE_TASKS:
        return load_glue(key.lower(), glue_source)
    path = Path(key).expanduser()
    if path.exists():
        return load_user_file(key, path, text_column, text_pair_column, label_column)
    if looks_like_path(key):
        raise DataError(
            f"Data file or folder {path} does not exist (resolved to {path.absolute()}). Check the path; a "
            f"task can also be a built-in name ({', '.join(BUILTIN_TASKS)}) or a GLUE name "
            f"({', '.join(GLUE_TASKS)})."
        )
    known = [*BUILTIN_TASKS, *GLUE_TASKS]
    close = difflib.get_close_matches(key.lower(), known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise DataError(
        f"Unknown task '{task}'.{hint} Built-in tasks: {', '.join(BUILTIN_TASKS)}; GLUE tasks: "
        f"{', '.join(GLUE_TASKS)}. A path to a .csv, .tsv, .jsonl/.json (JSON Lines) file or to a folder "
        "written by datasets.save_to_disk also works."
    )
