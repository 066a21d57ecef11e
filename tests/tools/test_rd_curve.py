"""tools/bjontegaard.py against known answers, then tools/rd_curve.py end to end on tiny clips."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import bjontegaard
import numpy as np
import pytest
import rd_curve

from tests.clips import moving_pattern, write_clip

RATES = np.array([0.02, 0.04, 0.08, 0.16])
PSNRS = np.array([30.0, 33.0, 35.5, 37.5])


def test_identical_curves_have_zero_deltas():
    assert bjontegaard.bd_rate(RATES, PSNRS, RATES, PSNRS).value == pytest.approx(0.0, abs=1e-9)
    assert bjontegaard.bd_psnr(RATES, PSNRS, RATES, PSNRS).value == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("factor", "percent"), [(0.5, -50.0), (2.0, 100.0)])
def test_same_psnr_at_scaled_rate(factor, percent):
    result = bjontegaard.bd_rate(RATES, PSNRS, RATES * factor, PSNRS)
    assert result.reason is None and result.value == pytest.approx(percent, rel=1e-6)


def test_psnr_shift_is_the_bd_psnr():
    result = bjontegaard.bd_psnr(RATES, PSNRS, RATES, PSNRS + 1.0)
    assert result.value == pytest.approx(1.0, rel=1e-6)
    assert result.overlap == pytest.approx((math.log10(0.02), math.log10(0.16)))
    # Better quality at every rate also means fewer bits for the same quality.
    assert bjontegaard.bd_rate(RATES, PSNRS, RATES, PSNRS + 1.0).value < 0


def test_published_x265_against_x264():
    # DESIGN.md section 5, Bunny: x265 against x264. -9.9645088833 % was cross-checked with scipy's
    # PchipInterpolator and a 100000-sample trapezoidal integral.
    x264 = ([0.136, 0.073, 0.038, 0.020], [40.8, 38.9, 36.4, 33.8])
    x265 = ([0.138, 0.067, 0.031, 0.015], [40.4, 38.5, 36.4, 34.2])
    result = bjontegaard.bd_rate(*x264, *x265)
    assert result.value == pytest.approx(-9.9645088833, rel=1e-8)
    assert result.overlap == pytest.approx((34.2, 40.4))


def test_disjoint_ranges_give_none_with_a_reason():
    rate = bjontegaard.bd_rate(RATES, PSNRS, RATES, PSNRS + 20.0)
    quality = bjontegaard.bd_psnr(RATES, PSNRS, RATES * 100.0, PSNRS)
    for result, axis in ((rate, "PSNR"), (quality, "log10(rate)")):
        assert result.value is None and result.overlap is None
        assert result.reason.startswith(f"{axis} ranges do not overlap")


def test_a_single_point_gives_none_with_a_reason():
    result = bjontegaard.bd_rate(RATES, PSNRS, [0.05, 0.05], [34.0, 34.0])
    assert result.value is None and "the test curve has 1 distinct PSNR value" in result.reason


def test_pchip_interpolates_and_keeps_monotone_data_monotone():
    x = np.array([0.0, 1.0, 2.0, 4.0, 7.0])
    y = np.array([0.0, 0.1, 3.0, 3.0, 10.0])  # non-decreasing, with a flat step and a jump
    np.testing.assert_allclose(bjontegaard.pchip_eval(x, y, x), y, atol=1e-12)
    dense = bjontegaard.pchip_eval(x, y, np.linspace(0, 7, 2001))
    assert np.all(np.diff(dense) >= -1e-12)
    # No overshoot: the flat step stays flat, where a natural cubic spline would swing past 3.
    np.testing.assert_allclose(bjontegaard.pchip_eval(x, y, np.linspace(2, 4, 11)), 3.0, atol=1e-12)


def test_pchip_integral_is_exact():
    x = np.array([0.0, 1.0, 3.0, 4.0])
    np.testing.assert_allclose(bjontegaard.pchip_integral(x, 2 * x + 1, 0.5, 3.5), 15.0)  # lines stay lines
    rng = np.random.default_rng(0)
    y = rng.normal(size=4)
    grid = np.linspace(0.5, 3.5, 200001)
    values = bjontegaard.pchip_eval(x, y, grid)
    trapezoid = float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(grid)))
    assert bjontegaard.pchip_integral(x, y, 0.5, 3.5) == pytest.approx(trapezoid, abs=1e-8)


def test_end_to_end_then_every_point_from_the_cache(tmp_path, capsys, monkeypatch):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(5, 48, 64))
    out = tmp_path / "rd"
    argv = [str(clip), "--out", str(out), "--bpp", "0.5", "--crf", "30", "--steps", "30,30,10", "--device", "cpu"]
    assert rd_curve.main(argv) == 0
    first = capsys.readouterr()

    with open(out / "rd.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    report = json.loads((out / "rd.json").read_text())
    points = report["points"]
    assert [r["codec"] for r in rows] == [p["codec"] for p in points] == ["stgv", "libx264", "libx265", "libsvtav1"]
    assert list(rows[0]) == list(points[0]) and all(list(p) == list(points[0]) for p in points)
    assert set(rd_curve.FIELDS) <= set(points[0]) and "bits_positions" in points[0]
    for point in points:
        for name in ("bytes", "bpp", "psnr", "y_psnr", "encode_seconds", "decode_seconds", "encode_fps", "decode_fps"):
            assert isinstance(point[name], (int, float)) and math.isfinite(point[name]), (point["codec"], name)
        coded = out / point["file"]
        assert point["bytes"] == coded.stat().st_size
        assert point["bpp"] == pytest.approx(point["bytes"] * 8 / (5 * 64 * 48))
        assert (point["frames"], point["width"], point["height"]) == (5, 64, 48)
        assert point["ms_ssim"] is None and point["cached"] is False
    stgv, x264 = points[0], points[1]
    assert stgv["target_bpp"] == 0.5 and stgv["steps"] == "30,30,10" and stgv["crf"] is None
    # stgv info's bits per stream, container included, add up to the whole file.
    assert sum(v for k, v in stgv.items() if k.startswith("bits_")) == 8 * stgv["bytes"]
    assert x264["crf"] == 30 and x264["preset"] == "medium" and x264["bits_positions"] is None
    assert points[3]["preset"] == "8"  # medium, in SVT-AV1's numbers
    assert report["input"] == {"path": str(clip), "frames": 5, "width": 64, "height": 48, "fps": "25",
                               "crop": None, "scale": None}  # fmt: skip
    assert "161" in report["ms_ssim"]
    # One point per curve: no Bjontegaard number, a reason instead.
    assert [b["anchor"] for b in report["bd"]] == ["libx264", "libx265", "libsvtav1"]
    assert all(b["bd_rate_percent"] is None and "at least 2" in b["bd_rate_reason"] for b in report["bd"])
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(first.out)["cached"] == 0
    assert "[4/4] libsvtav1 crf 30:" in first.err and "(cached)" not in first.err

    def no_coding(*args):
        raise AssertionError("a cached point was coded again")

    monkeypatch.setattr(rd_curve, "_stgv_point", no_coding)
    monkeypatch.setattr(rd_curve, "_anchor_point", no_coding)
    assert rd_curve.main(argv) == 0
    second = capsys.readouterr()
    assert json.loads(second.out)["cached"] == 4 and second.err.count("(cached)") == 4
    again = json.loads((out / "rd.json").read_text())["points"]
    assert [{**p, "cached": False} for p in again] == points and all(p["cached"] for p in again)


def test_odd_sizes_are_padded_for_the_anchors_and_cropped_back(tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(4, 30, 40))
    out = tmp_path / "rd"
    argv = [str(clip), "--out", str(out), "--codecs", "libx264,libsvtav1", "--crf", "10,40", "--crop", "33x25"]
    assert rd_curve.main(argv) == 0
    capsys.readouterr()
    report = json.loads((out / "rd.json").read_text())
    assert report["input"]["crop"] == "33x25" and report["bd"] == []
    for point in report["points"]:
        assert (point["width"], point["height"], point["coded_width"], point["coded_height"]) == (33, 25, 34, 26)
    by_setting = {(p["codec"], p["crf"]): p for p in report["points"]}
    for codec in ("libx264", "libsvtav1"):
        # A decode cropped from the wrong side scores about 22 dB here.
        assert by_setting[codec, 10]["psnr"] > 30
        assert by_setting[codec, 40]["bytes"] < by_setting[codec, 10]["bytes"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--codecs", "stgv,vp9"], "unknown codec 'vp9'"),
        (["--codecs", "libx264", "--crf", "60"], "--crf 60 is outside 0..51"),
        (["--codecs", "libx264", "--anchor-preset", "5"], "x264/x265 need a name"),
        (["--bpp", "0.1,abc"], "is not a comma-separated list of float"),
        (["--crop", "33by25"], "--crop: '33by25' is not WIDTHxHEIGHT"),
        (["--steps", "1,2"], "is not INIT,DEFORM,QAT"),
        (["--baseline", "missing.csv"], "--baseline missing.csv: no such file"),
    ],
)
def test_bad_options_are_one_line_and_nonzero(tmp_path, capsys, options, message):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(2, 16, 16))
    with pytest.raises(SystemExit) as exit_info:
        rd_curve.main([str(clip), "--out", str(tmp_path / "rd"), *options])
    assert exit_info.value.code != 0
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_unreadable_input(tmp_path, capsys):
    bad = tmp_path / "notvideo.mp4"
    bad.write_text("hello")
    with pytest.raises(SystemExit) as exit_info:
        rd_curve.main([str(bad), "--out", str(tmp_path / "rd")])
    assert exit_info.value.code != 0
    assert "not a video PyAV can open" in capsys.readouterr().err.strip().splitlines()[-1]


def test_stgv_runs_as_a_module_without_the_console_script(tmp_path, monkeypatch):
    monkeypatch.setattr(rd_curve.sys, "executable", str(tmp_path / "python"))
    assert rd_curve._stgv_command() == [str(tmp_path / "python"), "-m", "stgvcodec"]
    monkeypatch.undo()
    result = subprocess.run(
        [sys.executable, "-m", "stgvcodec", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("stgv, version")


def test_a_failing_stgv_run_reports_its_last_line(tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(2, 16, 16))
    argv = [str(clip), "--out", str(tmp_path / "rd"), "--codecs", "stgv", "--device", "no-such-device"]
    assert rd_curve.main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("rd_curve: error: stgv bpp 0.02: stgv encode failed (exit status 1): stgv: error:")
    assert not (tmp_path / "rd" / "rd.json").exists()


def test_an_input_among_its_outputs_is_refused(tmp_path, capsys):
    out = tmp_path / "rd"
    out.mkdir()
    write_clip(tmp_path / "clip.mkv", moving_pattern(2, 16, 16))
    clip = out / "rd.csv"  # a video, unluckily named
    (tmp_path / "clip.mkv").rename(clip)
    before = clip.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        rd_curve.main([str(clip), "--out", str(out), "--codecs", "libx264"])
    assert exit_info.value.code != 0
    assert "would overwrite the input" in capsys.readouterr().err.strip().splitlines()[-1]
    assert clip.read_bytes() == before


def test_json_of_a_tool_may_not_overwrite_its_input(tmp_path):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(2, 16, 16))
    before = clip.read_bytes()
    tool = Path(rd_curve.__file__).with_name("fit_bench.py")
    done = subprocess.run([sys.executable, str(tool), str(clip), "--json", str(clip)], capture_output=True, text=True)
    assert done.returncode != 0 and "refusing to overwrite" in done.stderr and clip.read_bytes() == before


def _write_baseline(path: Path, rows: list[dict]) -> Path:
    fields = ["codec", "setting", "frames", "width", "height", "bpp", "psnr", "ms_ssim"]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_baseline_csv_becomes_a_curve_with_bd_against_it(tmp_path):
    """A baseline needing twice the rate for each PSNR: the new curve's BD-rate against it is -50%."""
    source = type("Source", (), {"count": 5, "width": 64, "height": 48})()
    old = [dict(codec="stgv", setting=f"bpp {r}", frames=5, width=64, height=48, bpp=2 * r, psnr=q, ms_ssim="")
           for r, q in zip(RATES, PSNRS)]  # fmt: skip
    anchor = dict(codec="libx264", setting="crf 30", frames=5, width=64, height=48, bpp=0.1, psnr=30.0, ms_ssim="")
    baseline = rd_curve.read_baseline(_write_baseline(tmp_path / "old.csv", old + [anchor]), source)
    assert [p["codec"] for p in baseline] == ["stgv-baseline"] * 4  # the anchors of the old run are not taken
    new = [{"codec": "stgv", "bpp": float(r), "psnr": float(q)} for r, q in zip(RATES, PSNRS)]
    (row,) = rd_curve.bd_table(new + baseline)
    assert row["anchor"] == "stgv-baseline"
    assert row["bd_rate_percent"] == pytest.approx(-50.0, abs=1e-6) and row["bd_psnr_db"] > 0


@pytest.mark.parametrize(
    "rows,message",
    [
        ([], "no stgv points"),
        ([dict(codec="stgv", frames=5, width=64, height=40, bpp=0.1, psnr=30)], "5 frames of 64x40, this run 5 frames of 64x48"),
        ([dict(codec="stgv", frames=5, width=64, height=48, bpp="", psnr=30)], "line 2 lacks"),
    ],
)
def test_a_baseline_of_other_frames_or_no_points_is_refused(tmp_path, rows, message):
    source = type("Source", (), {"count": 5, "width": 64, "height": 48})()
    with pytest.raises(rd_curve.ToolError, match=message):
        rd_curve.read_baseline(_write_baseline(tmp_path / "old.csv", rows), source)
