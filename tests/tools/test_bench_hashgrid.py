"""tools/bench_hashgrid.py end to end on tiny sizes: both paths give the same bits, bad input is one line."""

import json
import subprocess
import sys
from pathlib import Path

from tests.clips import moving_pattern, write_clip

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_hashgrid.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)


def test_grids_and_stage2_steps_agree_between_paths(tmp_path):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(4, 16, 24))
    done = _run(str(clip), "--gop-size", "4", "--gaussians", "0,70", "--stage2-gaussians", "40",
                "--rounds", "1", "--iterations", "1", "--steps", "2", "--json", str(tmp_path / "out.json"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == json.loads((tmp_path / "out.json").read_text())
    assert [case["gaussians"] for case in report["grids"]] == [0, 70]
    assert all(case["features_equal"] and case["max_grad_diff"] == 0.0 for case in report["grids"])
    stage2 = report["stage2"]
    assert (stage2["frames"], stage2["gaussians"], stage2["steps_per_path"]) == (4, 40, 3)
    assert stage2["parameters_equal"]
    assert stage2["torch"]["wall_ms"] > 0 and stage2["numba"]["cpu_ms"] >= 0


def test_bad_counts_are_one_line():
    done = _run("--gaussians", "many")
    assert done.returncode != 0
    message = "bench_hashgrid: --gaussians wants comma-separated integers, got 'many'"
    assert done.stderr.strip().splitlines() == [message]
