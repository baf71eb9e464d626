"""The documented own-Trainer example (docs/python-api.md) runs as written (real MiniLM, a small slice of Rotten
Tomatoes)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PYTHON_API = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


@pytest.mark.slow
def test_readme_own_trainer_example_runs(tmp_path):
    text = PYTHON_API.read_text()
    code = re.search(r"<!-- example: own-trainer -->\n```python\n(.*?)```", text, re.S).group(1)
    (tmp_path / "example.py").write_text(code)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trainable params:" in done.stdout and "within budget: True" in done.stdout
    recipe = json.loads((tmp_path / "runs" / "own-trainer" / "recipe.json").read_text())
    assert recipe["peft_params"] <= recipe["budget_params"] and recipe["candidates"]
