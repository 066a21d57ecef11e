"""tools/fit_bench.py end to end on a tiny clip: consecutive GoPs with warm starts, and the same GoPs
fitted by another revision of the code (HEAD, extracted by git archive) in a second process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clips import moving_pattern, write_clip

TOOL = Path(__file__).resolve().parents[2] / "tools" / "fit_bench.py"
STEPS = ["--gaussians", "60", "--init-steps", "60", "--deform-steps", "6"]
STEPS += ["--warm-init-steps", "2", "--warm-deform-steps", "4"]


def _bench(clip: Path, out: Path, *options: str) -> dict:
    command = [sys.executable, str(TOOL), str(clip), "--gop-size", "2", "--gops", "1-3", *STEPS, "-q"]
    command += ["--json", str(out)]
    done = subprocess.run([*command, *options], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("fit_bench") / "clip.mkv", moving_pattern(6, 24, 32))


@pytest.fixture(scope="module")
def report(clip, tmp_path_factory):
    """GoPs 1-3 warm-started as the encoder does, and fitted by HEAD's code in a second process;
    PSNR against time every 2 steps, drawn."""
    folder = tmp_path_factory.mktemp("report")
    options = ("--qat-steps", "3", "--baseline-ref", "HEAD", "--curve", "2", "--curve-png", str(folder / "curve.png"))
    return {**_bench(clip, folder / "fit.json", *options), "png": folder / "curve.png"}


def test_consecutive_gops_start_from_the_decoded_previous_gop(report, clip, tmp_path):
    runs = [r for r in report["runs"] if r["variant"] == "custom"]
    assert [r["gop"] for r in runs] == [1, 2, 3] and report["warm"] == "decoded"
    assert [r["warm"] for r in runs] == [False, True, True]
    assert [r["steps"] for r in runs] == [66, 6, 6]
    assert ["coded_psnr" in r for r in runs] == [True, True, False]  # the last GoP starts none
    assert all(r["cpu_seconds"] > 0 and r["seconds"] > 0 for r in runs)
    assert report["summary"]["custom"]["psnr"] == pytest.approx(sum(r["psnr"] for r in runs) / 3)
    cold = _bench(clip, tmp_path / "cold.json", "--warm", "off")["runs"]
    assert [r["warm"] for r in cold] == [False] * 3 and [r["steps"] for r in cold] == [66] * 3
    assert cold[0]["psnr"] == runs[0]["psnr"]


def test_baseline_revision_runs_in_the_same_report(report):
    current = [r for r in report["runs"] if r["variant"] == "custom"]
    baseline = [r for r in report["runs"] if r["variant"] == "baseline"]
    assert [r["gop"] for r in baseline] == [1, 2, 3] and not any(r["warm"] for r in baseline)
    assert all("fit-bench-" in r["package"] for r in baseline)  # imported from the extracted revision
    assert all("fit-bench-" not in r["package"] for r in current)
    comparison = report["comparison"]
    assert [g["gop"] for g in comparison["gops"]] == [1, 2, 3]
    first = comparison["gops"][0]
    assert first["psnr_gain"] == pytest.approx(current[0]["psnr"] - baseline[0]["psnr"])
    assert first["cpu_seconds_ratio"] == pytest.approx(current[0]["cpu_seconds"] / baseline[0]["cpu_seconds"])
    assert set(report["summary"]) >= {"custom", "baseline"}


def test_curves_record_psnr_and_time_every_few_steps_for_both_revisions(report):
    for run in report["runs"]:
        curve = run["curve"]
        assert [p["step"] for p in curve] == [*range(2, run["steps"] + 1, 2), run["steps"]]
        assert [p["stage"] for p in curve[-2:]] == ["deform", "done"]
        assert curve[-1]["psnr"] == run["psnr"] and curve[-1]["cpu_seconds"] == run["cpu_seconds"]
        assert all(0 < p["psnr"] < 100 for p in curve)
        times = [p["cpu_seconds"] for p in curve]
        assert times == sorted(times) and times[0] > 0
    first = [r for r in report["runs"] if r["gop"] == 1]
    assert [r["curve"][29]["stage"] for r in first] == ["init", "init"]  # step 60 of 60 + 6
    assert report["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_revision_is_one_line(clip, tmp_path):
    done = subprocess.run([sys.executable, str(TOOL), str(clip), "--baseline-ref", "no-such-revision-xyz"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0
    message = f"fit_bench: --baseline-ref no-such-revision-xyz: not a revision of {TOOL.parents[1]}"
    assert done.stderr.strip().splitlines() == [message]
