"""tools/fuzz_decoder.py: the committed corpus replays clean, the mutator keeps the framing valid,
every kind of failure is reported, and a short fuzzing run of every target finds nothing.

The replay is the test that can fail meaningfully: tests/fuzz_corpus/regressions holds inputs
that crashed (SIGSEGV), failed or were silently accepted before the decoder was hardened.
"""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import fuzz_decoder
import pytest

from stgvcodec.bitstream import BitstreamError, Chunk, StgvReader, write_stgv
from stgvcodec.bitstream.model_config import unpack_model_config
from stgvcodec.bitstream.gop import decode_gop
from stgvcodec.decode import read_gop, tensor_sizes

TOOL = Path(fuzz_decoder.__file__)
SEEDS = sorted(fuzz_decoder.SEEDS.glob("*.stgv"))
STGV_REGRESSIONS = sorted((fuzz_decoder.REGRESSIONS / "stgv").glob("*"))
SYMBOL_REGRESSIONS = sorted((fuzz_decoder.REGRESSIONS / "symbols").glob("*"))
REGRESSIONS = STGV_REGRESSIONS + SYMBOL_REGRESSIONS
HAS_ATHERIS = importlib.util.find_spec("atheris") is not None


def _run(*args: str, timeout: float = 600) -> tuple[int, dict, str]:
    result = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=timeout)
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.returncode, report, result.stderr


def test_corpus_is_committed():
    assert len(SEEDS) >= 4 and len(REGRESSIONS) >= 10
    assert all(path.stat().st_size < 16384 for path in SEEDS + REGRESSIONS)


def test_committed_corpus_replays_clean(tmp_path):
    """Every seed and regression input through every target: decoded or rejected with
    BitstreamError, within the time and memory limits."""
    status, report, stderr = _run("--replay", "--out", str(tmp_path))
    assert status == 0, stderr + json.dumps(report.get("failures"), indent=1)
    for target in ("container", "payload", "render"):
        assert report["targets"][target]["inputs"] == len(SEEDS) + len(STGV_REGRESSIONS)
    streams = sum(len(fuzz_decoder.coded_streams(p.read_bytes())) for p in SEEDS + STGV_REGRESSIONS)
    assert report["targets"]["symbols"]["inputs"] == streams + len(SYMBOL_REGRESSIONS)


def test_seeds_decode():
    """The seeds are valid files (real encodes), so mutations start from deep inside the decoder."""
    predicted = 0
    for path in SEEDS:
        with StgvReader(path) as reader:
            sizes = tensor_sizes(unpack_model_config(reader.header.config))
            reference = None
            for k, entry in enumerate(reader.gops):
                _, reference = read_gop(reader, k, sizes, reference)
                assert len(reference) > 0
                predicted += entry.predicted
    assert predicted > 0  # the seeds reach the predicted payload's streams too


def test_split_and_join_round_trip():
    for path in SEEDS:
        data = path.read_bytes()
        layout = fuzz_decoder.split_stgv(data)
        assert fuzz_decoder.join_stgv(layout) == data
        for k, payload in enumerate(layout.payloads):
            streams = fuzz_decoder.split_streams(payload, layout.version, layout.predicted(k))
            assert fuzz_decoder.join_streams(streams, layout.version) == payload


def test_split_and_join_handle_version_3(tmp_path):
    """The seeds are version-2 files; a version-3 file (21-byte index entries, flags last) splits,
    joins back byte for byte, and its flags are mutated with the framing kept consistent."""
    for seed in SEEDS:
        with StgvReader(seed) as reader:
            header = replace(reader.header, version=3)
            chunks = [reader.read_chunk(0)] + [Chunk(reader.read_chunk(k), True) for k in range(1, len(reader.gops))]
        if len(chunks) > 1:
            break
    write_stgv(tmp_path / "v3.stgv", header, chunks)
    data = (tmp_path / "v3.stgv").read_bytes()
    layout = fuzz_decoder.split_stgv(data)
    assert layout.flags == [0] + [1] * (len(chunks) - 1)
    assert fuzz_decoder.join_stgv(layout) == data
    assert fuzz_decoder.split_stgv(seed.read_bytes()).flags == []

    rng = random.Random(3)
    mutate = lambda data, size: fuzz_decoder._random_bytes(data, size, rng)  # noqa: E731
    flag_rejections = 0
    for _ in range(200):
        (tmp_path / "m.stgv").write_bytes(fuzz_decoder.mutate_stgv(data, 1 << 15, rng, mutate))
        try:
            StgvReader(tmp_path / "m.stgv").close()
        except BitstreamError as error:
            flag_rejections += "flag" in str(error) or "GoP 0 must be a key GoP" in str(error)
    assert flag_rejections > 0


def test_structured_mutations_pass_the_framing_checks():
    """Most mutations keep header, index and chunk CRCs and lengths consistent, so they reach the
    payload parser; a few (the unstructured ones) exercise the framing checks."""
    rng = random.Random(5)
    mutate = lambda data, size: fuzz_decoder._random_bytes(data, size, rng)  # noqa: E731
    framed = payload_rejections = total = 0
    for _ in range(300):
        data = fuzz_decoder.mutate_stgv(rng.choice(SEEDS).read_bytes(), 1 << 15, rng, mutate)
        total += 1
        path = Path("/dev/shm" if Path("/dev/shm").is_dir() else "/tmp") / f"stgv-mutation-{id(data)}.stgv"
        path.write_bytes(data)
        try:
            with StgvReader(path) as reader:
                sizes = tensor_sizes(unpack_model_config(reader.header.config))
                payloads = [reader.read_chunk(k) for k in range(len(reader.gops))]
                version = reader.header.version
            framed += 1
            for payload in payloads:
                try:
                    decode_gop(payload, sizes, version=version)
                except BitstreamError:
                    payload_rejections += 1
        except BitstreamError:
            pass
        finally:
            path.unlink()
    assert framed > 0.5 * total and framed < total
    assert payload_rejections > 0


def test_mutator_takes_any_input():
    """Chains of mutations, fed back as inputs: the mutator itself never raises."""
    rng = random.Random(1)
    mutate = lambda data, size: fuzz_decoder._random_bytes(data, size, rng)  # noqa: E731
    pool = [path.read_bytes() for path in SEEDS] + [b"", b"STGV", bytes(64)]
    for _ in range(3000):
        data = rng.choice(pool)
        for _ in range(rng.randint(1, 8)):
            data = fuzz_decoder.mutate_stgv(data, 1 << 15, rng, mutate)
            assert len(data) <= 1 << 15
        pool.append(data)


def _run_selftest(tmp_path: Path, engine: str, content: bytes, *options: str) -> tuple[int, dict, str]:
    """The selftest target fuzzed from the one input `content`."""
    if engine == "atheris" and not HAS_ATHERIS:
        pytest.skip("atheris is not installed")
    (tmp_path / "corpus" / "selftest").mkdir(parents=True)
    (tmp_path / "corpus" / "selftest" / "input").write_bytes(content)
    return _run("--engine", engine, "--target", "selftest", "--corpus", str(tmp_path / "corpus"),
                "--out", str(tmp_path / "out"), *options, timeout=300)  # fmt: skip


@pytest.mark.parametrize("engine", ["random", "atheris"])
@pytest.mark.parametrize(
    "content,kind,options",
    [
        (b"raise", "exception|crash", []),  # atheris reports an uncaught exception as a crash
        (b"segv", "crash", []),
        (b"hang", "timeout", ["--timeout", "1"]),
        (b"memory", "memory|oom", ["--rss-mb", "600", "--timeout", "30"]),
    ],
)
def test_every_kind_of_failure_is_reported(tmp_path, engine, content, kind, options):
    """A target that raises, crashes, hangs (spins) or allocates 1 GiB on purpose: exit status 1,
    one line naming the kind and the saved input, and the input saved."""
    status, report, stderr = _run_selftest(tmp_path, engine, content, "--seconds", "6", *options)
    assert status == 1, stderr
    assert report["ok"] is False and len(report["failures"]) == 1
    failure = report["failures"][0]
    assert failure["kind"] in kind.split("|"), failure
    assert Path(failure["input"]).read_bytes().startswith(content)
    lines = stderr.strip().splitlines()
    assert f"fuzz_decoder: selftest: {failure['kind']}:" in lines[-1] and failure["input"] in lines[-1]


@pytest.mark.parametrize("engine", ["random", "atheris"])
def test_waiting_is_not_a_timeout(tmp_path, engine):
    """The time limit counts CPU time: an input that waits 3 s under a 1 s limit passes, as a
    decoder input does when a busy machine leaves it waiting for a core."""
    status, report, stderr = _run_selftest(tmp_path, engine, b"sleep", "--seconds", "2", "--timeout", "1")
    assert status == 0 and report["ok"], stderr + json.dumps(report.get("failures"), indent=1)
    assert report["targets"]["selftest"]["executions"] >= 1 and report["wall_seconds"] >= 3


@pytest.mark.slow
def test_short_fuzzing_run_finds_nothing(tmp_path):
    """About 30 s over the four targets (atheris when installed). It fails only on a real finding:
    the per-input limit (60 s of CPU time) and memory bound (4 GB) are far above what an input
    takes here (milliseconds, under 600 MB), however busy the machine."""
    engine = "atheris" if HAS_ATHERIS else "random"
    status, report, stderr = _run("--engine", engine, "--seconds", "30", "--out", str(tmp_path), timeout=900)
    assert status == 0, stderr + json.dumps(report.get("failures"), indent=1)
    for target in fuzz_decoder.TARGETS:
        assert report["targets"][target]["executions"] > 0, target
        if engine == "atheris":
            assert report["targets"][target]["coverage"]["cov"] > 0, target
