"""The report page renders in headless Chromium (Debian's `chromium`), plots included."""

import shutil
import subprocess

import pytest

from prunepeft.cli.main import main
from test_search import _search, csv_task  # noqa: F401  (fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tiny_bert_dir, csv_task, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("report") / "run"
    _search(tiny_bert_dir, csv_task, out, "--budget", "2000")
    return out


def test_report_command_rewrites_the_page(run_dir):
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert "Module map" in (run_dir / "report.html").read_text()


def test_report_for_a_folder_of_runs(run_dir):
    assert main(["report", str(run_dir.parent)]) == 0
    assert (run_dir.parent / "runs.png").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,2400",
         f"--screenshot={shot}", (run_dir / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a page with images, not a blank one
    # the rendered page holds the four plots of a search
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", (run_dir / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.stdout.count("<img") == 4
