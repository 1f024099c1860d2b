"""Smoke test of scripts/bench.py on minute sizes, so the benchmark does not rot.

No timing is asserted: only that every section runs and the JSON has its rows.
PyTorch is left out (--no-torch), so this passes with or without torch installed.
"""

import json
import subprocess
import sys

from conftest import BUNDLED_NAMES, ROOT


def test_bench_tiny_runs_every_section_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--tiny", "--no-torch",
         "--data", str(BUNDLED_NAMES), "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    sections = {r["section"] for r in report["rows"]}
    assert sections == {"train", "sample", "cli", "memory"}
    assert all(r["dinogen"] > 0 for r in report["rows"])
    course = [r for r in report["rows"] if r["peer_name"] == "course-style"]
    assert len(course) == 1 and course[0]["ratio"] > 0
    assert any("PyTorch peer skipped" in note for note in report["notes"])
    assert "| section |" in result.stdout


def test_profile_step_prints_every_part_of_a_step():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "profile_step.py"), "--hidden", "8", "--batch", "4", "--batches", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for part in ("cell forward", "cell backward", "local derivatives", "optimizer (Adam)", "predictions/s"):
        assert part in result.stdout
