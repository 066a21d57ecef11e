"""Fuzzing of the decoder: container, GoP payload, symbol streams, and parse + render. Prints JSON.

    python tools/fuzz_decoder.py --seconds 600                 # atheris (libFuzzer), every target
    python tools/fuzz_decoder.py --seconds 60 --engine random  # seeded random mutation, no atheris
    python tools/fuzz_decoder.py --replay                      # the committed corpus, each input once
    python tools/fuzz_decoder.py --make-seeds                  # re-encode the seed .stgv files

Targets (inputs are .stgv files, except for `symbols`, whose input is one coded symbol stream):

    container  StgvReader (header, index, every chunk's length and CRC), model configuration, streams
    payload    the above, then read_gop of every chunk that reads (a predicted GoP with the GoP before it as reference)
    symbols    decode_symbols; what decodes must re-encode and decode to the same symbols
    render     the above, then gop_model + render_gop: two frames of each GoP at <= 24 x 24 pixels

An input passes when it decodes or is rejected with BitstreamError. Anything else fails the run
(exit status 1): another exception, a crash (a signal such as SIGSEGV), an input that uses more
than --timeout seconds of CPU time, or a process whose memory exceeds --rss-mb. Each target runs in
its own child process, so a crash is reported with the input that caused it (saved under --out).

Time is CPU time, not wall time: a decoder that loops spends CPU, and an input's CPU time stays
what it is on a busy machine, where a starved process takes minutes of wall time over a
millisecond input. A child stuck without using CPU (a deadlock) is killed by the driver once it has
run its share of --seconds + 2 x --timeout + 600 s of wall time. libFuzzer's own timeout and its
slow-unit files count wall time: its timeout is set past that point, and slow units are listed
(`slow_units`), not failed.

Structure-aware mutation: libFuzzer's byte mutations rarely survive the container's CRCs, so the
custom mutator splits a .stgv file into header, chunks and each chunk's streams, mutates one of
them (bytes through libFuzzer, a PARAMS number replaced by NaN, inf, a bound or an extreme
integer, or an index entry's frames or, from version 3, its flags), and writes the file again with
every length, offset and CRC made consistent. One
mutation in six leaves the framing as it is, so the framing checks are fuzzed as well.

Corpus (tests/fuzz_corpus): seeds/*.stgv are tiny encodes made by --make-seeds; regressions/stgv/
and regressions/symbols/ hold inputs that once failed, replayed by --replay (and by the tests).
An input a run reports goes there once the defect is fixed.

Coverage (atheris only) is libFuzzer's: `cov` counts the distinct edges of the instrumented code
(Python bytecode branches of stgvcodec, the numba and Triton kernels excluded) that the corpus
reaches, `ft` libFuzzer's finer features (edges with hit-count buckets).

Budgets, so a run measures the decoder rather than the machine: the render target skips GoPs
whose network has over 2^20 weights or that hold over 2^16 Gaussians, and the payload target
configurations over 2^24 weights (valid files, but gigabytes of work per input).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fuzz_corpus"
SEEDS = CORPUS / "seeds"
REGRESSIONS = CORPUS / "regressions"
TARGETS = ("container", "payload", "symbols", "render")
SELFTEST = "selftest"
"""A target whose inputs misbehave on purpose (b"raise", b"segv", b"hang", b"memory"), so the
tests can check that every kind of failure is reported, and one that waits (b"sleep"), which
must pass: waiting is not spending time on the input."""

RENDER_SIDE = 24
RENDER_FRAMES = 2
RENDER_MAX_WEIGHTS = 1 << 20
RENDER_MAX_GAUSSIANS = 1 << 16
RENDER_MAX_GOPS = 4
PAYLOAD_MAX_WEIGHTS = 1 << 24
SYMBOLS_MAX_COUNT = 1 << 20
MAX_LEN = 1 << 15
"""Longest input libFuzzer makes (the seeds are 2-7 KB)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total fuzzing time, shared by the targets")
    parser.add_argument("--engine", choices=("atheris", "random"), default="atheris")
    parser.add_argument("--target", action="append", choices=(*TARGETS, SELFTEST), help="repeatable; default: all")
    parser.add_argument("--timeout", type=float, default=60.0, help="CPU seconds one input may use")
    parser.add_argument("--rss-mb", type=int, default=4096, help="largest resident memory of a fuzzing process")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations")
    parser.add_argument("--out", help="directory for logs, new corpus entries and failing inputs (default: temporary)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="corpus root (seeds/, regressions/)")
    parser.add_argument("--replay", nargs="*", type=Path, metavar="PATH",
                        help="run these inputs (default: the whole corpus) once each instead of fuzzing")  # fmt: skip
    parser.add_argument("--make-seeds", action="store_true", help="write the seed .stgv files and stop")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        sys.exit(_child(args))
    if args.make_seeds:
        _report({"seeds": [str(p) for p in make_seeds(args.corpus / "seeds")]}, args.json)
        return
    if args.engine == "atheris" and args.replay is None and not _has_atheris():
        sys.exit("fuzz_decoder: atheris is not installed (pip install atheris, or use --engine random)")
    report = drive(args)
    _report(report, args.json)
    if not report["ok"]:
        for failure in report["failures"]:
            print(f"fuzz_decoder: {failure['target']}: {failure['kind']}: {failure['message']} "
                  f"(input: {failure.get('input')})", file=sys.stderr)  # fmt: skip
        sys.exit(1)


def _report(report: dict, path: str | None) -> None:
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n")


def _has_atheris() -> bool:
    import importlib.util

    return importlib.util.find_spec("atheris") is not None


# ----------------------------------------------------------------------------------------------
# The driver: one child process per target, then one report.


def drive(args) -> dict:
    """Runs the targets in child processes and collects executions, coverage and failures.

    Fuzzing gives each target its own process and an equal share of --seconds; a replay runs
    every target in one process (one import of torch instead of four).
    """
    targets = args.target or list(TARGETS)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="stgv-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    replay = args.replay is not None
    report: dict = {"engine": "replay" if replay else args.engine, "seconds": 0.0 if replay else args.seconds,
                    "out": str(out), "targets": {}, "failures": []}  # fmt: skip
    start = time.perf_counter()
    groups = [targets] if replay else [[target] for target in targets]
    for k, group in enumerate(groups):
        budget = 0.0 if replay else args.seconds / len(groups)
        for target, result in _run_child(args, group, budget, out, seed=args.seed + k).items():
            report["targets"][target] = {key: value for key, value in result.items() if key != "failures"}
            report["failures"] += [{"target": target, **failure} for failure in result["failures"]]
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    report["executions"] = sum(t["executions"] for t in report["targets"].values())
    report["ok"] = not report["failures"]
    return report


def _run_child(args, targets: list[str], budget: float, out: Path, seed: int) -> dict[str, dict]:
    """Targets in a fresh process; per target its result, with the failures its exit status and
    libFuzzer's artifacts tell (a child that dies is charged to the target it was running)."""
    work = out / "-".join(targets)
    work.mkdir(parents=True, exist_ok=True)
    result_path, log_path = work / "result.json", work / "log.txt"
    result_path.unlink(missing_ok=True)
    # Inputs are written to a file before each run (the reader takes a path; a crash leaves the
    # input behind): in memory where the machine has a tmpfs, as a disk write costs milliseconds.
    scratch = Path(tempfile.mkdtemp(prefix="stgv-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    command = [sys.executable, str(Path(__file__).resolve()), "--child", ",".join(targets),
               "--result", str(result_path), "--engine", args.engine, "--seconds", str(budget),
               "--timeout", str(args.timeout), "--rss-mb", str(args.rss_mb), "--seed", str(seed),
               "--out", str(work), "--corpus", str(args.corpus), "--scratch", str(scratch)]  # fmt: skip
    if args.replay is not None:
        command += ["--replay", *map(str, args.replay)]
    # One thread per pool: the children measure the decoder, not thread scheduling on a shared machine.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    deadline = _deadline(budget, args.timeout)
    with open(log_path, "wb") as log:
        try:
            status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=deadline).returncode
        except subprocess.TimeoutExpired:
            status = None
    running = (scratch / "target").read_text() if (scratch / "target").exists() else targets[0]
    if (scratch / "current").exists():
        (work / "current").write_bytes((scratch / "current").read_bytes())
    shutil.rmtree(scratch, ignore_errors=True)
    text = log_path.read_text(errors="replace")
    results = json.loads(result_path.read_text()) if result_path.exists() else {}
    for target in targets:
        result = results.setdefault(target, {})
        result.setdefault("executions", 0)
        result.setdefault("failures", [])
        result["log"] = str(log_path)
    if args.engine == "atheris" and args.replay is None:
        results[targets[0]].update(_libfuzzer_stats(text))
        results[targets[0]]["failures"] += _libfuzzer_failures(text, work / "artifacts")
        slow = sorted(str(p) for p in (work / "artifacts").glob("slow-unit-*"))
        if slow:
            results[targets[0]]["slow_units"] = slow
    failed = any(r["failures"] for r in results.values())
    if status is None:
        message = f"the child ran past {deadline} s of wall time and was killed"
        results[running]["failures"].append({"kind": "hang", "message": message})
    elif status != 0 and not failed:
        results[running]["failures"].append(_status_failure(status, work, text, args.timeout))
    return results


def _deadline(budget: float, timeout: float) -> int:
    """Wall seconds after which the driver kills a child. The child stops itself long before,
    unless it is stuck without using CPU, which the per-input CPU-time limit cannot see."""
    return int(budget + 2 * timeout + 600)


def _status_failure(status: int, work: Path, log: str, timeout: float) -> dict:
    """A child that died without reporting why: a signal, SIGPROF being the per-input CPU-time
    limit (after faulthandler printed the stacks). The input it was on is in `current`."""
    if status == -signal.SIGPROF:
        kind, message = "timeout", f"an input used more than {timeout:g} s of CPU time (stacks in the log)"
    elif status < 0:
        kind, message = "crash", f"killed by signal {signal.Signals(-status).name}"
    else:
        kind, message = "error", f"exit status {status}: " + (log.strip().splitlines() or [""])[-1][-300:]
    current = work / "current"
    saved = None
    if current.exists():
        data = current.read_bytes()
        saved = work / "artifacts" / f"{kind}-{hashlib.sha1(data).hexdigest()}"
        saved.parent.mkdir(exist_ok=True)
        saved.write_bytes(data)
    return {"kind": kind, "message": message, "input": str(saved) if saved else None}


_STATUS_LINE = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.M)


def _libfuzzer_stats(log: str) -> dict:
    """Executions and coverage from libFuzzer's status lines and final stats."""
    stats: dict = {"coverage": None}
    lines = _STATUS_LINE.findall(log)
    if lines:
        execs, cov, ft, corpus = map(int, lines[-1])
        stats.update(executions=execs, coverage={"cov": cov, "ft": ft}, corpus=corpus)
    final = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    if final:
        stats["executions"] = int(final.group(1))
    rate = re.search(r"stat::average_exec_per_sec:\s*(\d+)", log)
    if rate:
        stats["executions_per_second"] = int(rate.group(1))
    peak = re.search(r"stat::peak_rss_mb:\s*(\d+)", log)
    if peak:
        stats["peak_rss_mb"] = int(peak.group(1))
    return stats


_LIBFUZZER_FAILURES = ("crash", "timeout", "oom", "leak")
"""Prefixes of libFuzzer's artifacts that are failures. Its slow-unit- files (an input over 10 s of
wall time, which any input takes on a busy enough machine) are not."""


def _libfuzzer_failures(log: str, artifacts: Path) -> list[dict]:
    """One failure per failure artifact libFuzzer wrote (_LIBFUZZER_FAILURES), with its reason."""
    failures = []
    reason = "; ".join(
        line.strip() for line in log.splitlines()
        if "ERROR: libFuzzer" in line or line.startswith(("ALARM:", "=== Uncaught Python exception"))
    )  # fmt: skip
    exception = re.search(r"=== Uncaught Python exception: ===\n(.*?)\n(?:Traceback|\s*File)", log, re.S)
    for path in sorted(artifacts.glob("*")) if artifacts.exists() else []:
        kind = path.name.split("-")[0]
        if kind not in _LIBFUZZER_FAILURES:
            continue
        message = exception.group(1).strip() if kind == "crash" and exception else reason
        failures.append({"kind": kind, "message": message or "see the log", "input": str(path)})
    return failures


# ----------------------------------------------------------------------------------------------
# The child: fuzz or replay one target.


def _child(args) -> int:
    targets, work, scratch = args.child.split(","), Path(args.out), Path(args.scratch)
    artifacts = work / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    results = {target: {"executions": 0, "failures": []} for target in targets}

    def save() -> None:
        Path(args.result).write_text(json.dumps(results))

    # The CPU timer of Harness.limits sends SIGPROF: faulthandler prints every thread's stack,
    # then the default action ends the process, which the driver reports as a timeout.
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    faulthandler.register(signal.SIGPROF, all_threads=True, chain=True)

    if targets != [SELFTEST]:
        import torch

        torch.set_num_threads(1)
    if args.engine == "atheris" and args.replay is None:
        return _fuzz_atheris(args, targets[0], work, scratch, artifacts)
    for target in targets:
        (scratch / "target").write_text(target)  # whom a crash is charged to
        harness = Harness(target, scratch, args.timeout, args.rss_mb)
        result = results[target]
        if args.replay is None:
            _fuzz_random(args, harness, _corpus_inputs(target, args.corpus, work), artifacts, result)
            continue
        inputs = _expand(args.replay, target, args.corpus, work)
        for path in inputs:
            result["executions"] += 1
            failure = harness.run(path.read_bytes())
            if failure:
                result["failures"].append({**failure, "input": str(path)})
        result["inputs"] = len(inputs)
    save()
    return 1 if any(r["failures"] for r in results.values()) else 0


def _corpus_inputs(target: str, corpus: Path, work: Path) -> list[Path]:
    """The seed and regression inputs of a target (symbol streams cut from the seed files)."""
    if target == SELFTEST:
        return sorted((corpus / "selftest").glob("*"))
    files = sorted((corpus / "seeds").glob("*.stgv")) + sorted((corpus / "regressions" / "stgv").glob("*"))
    if target != "symbols":
        return files
    streams = work / "symbol-seeds"
    streams.mkdir(exist_ok=True)
    for path in files:
        for k, data in enumerate(coded_streams(path.read_bytes())):
            (streams / f"{path.stem}-{k}").write_bytes(data)
    return sorted(streams.glob("*")) + sorted((corpus / "regressions" / "symbols").glob("*"))


def _expand(paths: list[Path], target: str, corpus: Path, work: Path) -> list[Path]:
    """Replay paths: files as given, directories by content; by default the target's corpus."""
    if not paths:
        return _corpus_inputs(target, corpus, work)
    return [q for p in paths for q in (sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p])]


def _fuzz_random(args, harness: Harness, inputs: list[Path], artifacts: Path, result: dict) -> None:
    """Seeded random mutation of the corpus until the time is up or an input fails."""
    rng = random.Random(args.seed)
    pool = [p.read_bytes() for p in inputs]
    if not pool:
        raise SystemExit(f"fuzz_decoder: no inputs for target {harness.target}")

    def mutate(data: bytes, size: int) -> bytes:
        return _random_bytes(data, size, rng)

    start = time.monotonic()
    for data in pool:  # every corpus input once, unmutated
        if _record_failure(harness, data, artifacts, result):
            return
    while time.monotonic() < start + args.seconds:
        data = rng.choice(pool)
        for _ in range(rng.randint(1, 4)):
            if harness.target in ("symbols", SELFTEST):
                data = mutate(data, MAX_LEN)
            else:
                data = mutate_stgv(data, MAX_LEN, rng, mutate)
        if _record_failure(harness, data, artifacts, result):
            return
    result["executions_per_second"] = round(result["executions"] / max(time.monotonic() - start, 1e-9), 1)


def _record_failure(harness: Harness, data: bytes, artifacts: Path, result: dict) -> bool:
    result["executions"] += 1
    failure = harness.run(data)
    if failure is None:
        return False
    saved = artifacts / f"{failure['kind']}-{hashlib.sha1(data).hexdigest()}"
    saved.write_bytes(data)
    result["failures"].append({**failure, "input": str(saved)})
    return True


def _fuzz_atheris(args, target: str, work: Path, scratch: Path, artifacts: Path) -> int:
    import atheris

    harness = Harness(target, scratch, args.timeout, args.rss_mb, instrument=atheris)
    seeds = _corpus_inputs(target, args.corpus, work)
    new = work / "corpus"
    new.mkdir(exist_ok=True)
    seed_dirs = sorted({str(p.parent) for p in seeds})
    # libFuzzer's (and atheris's) -timeout counts wall time: past the driver's deadline, it never
    # decides; the harness's CPU-time limit does.
    argv = [sys.argv[0], str(new), *seed_dirs, f"-max_total_time={max(int(args.seconds), 1)}",
            f"-timeout={_deadline(args.seconds, args.timeout) + 1}", f"-rss_limit_mb={args.rss_mb}",
            f"-seed={args.seed + 1}", f"-artifact_prefix={artifacts}/", f"-max_len={MAX_LEN}",
            "-print_final_stats=1"]  # fmt: skip

    def one_input(data: bytes) -> None:
        with harness.limits(data):
            harness.check(data)

    if target in ("symbols", SELFTEST):
        atheris.Setup(argv, one_input)
    else:
        rng = random.Random()

        def mutator(data: bytes, max_size: int, seed: int) -> bytes:
            rng.seed(seed)
            try:
                return mutate_stgv(data, max_size, rng, atheris.Mutate)
            except Exception:  # noqa: BLE001 - a fault of this tool, not of the decoder
                traceback.print_exc()
                print("fuzz_decoder: the mutator failed (a bug in tools/fuzz_decoder.py)", flush=True)
                os._exit(3)

        atheris.Setup(argv, one_input, custom_mutator=mutator)
    atheris.Fuzz()
    return 0


# ----------------------------------------------------------------------------------------------
# Targets.


class Harness:
    """Runs one input through a target; knows what counts as a failure."""

    def __init__(self, target: str, scratch: Path, timeout: float, rss_mb: int, instrument=None):
        self.target, self.timeout, self.rss_mb = target, timeout, rss_mb
        self.current = scratch / "current"
        self.file = scratch / "input.stgv"
        self.run_input = self._import(instrument)
        # Imported here, not in the first input's time; after _import, as a module imported before
        # atheris.instrument_imports is not instrumented.
        from stgvcodec.bitstream import BitstreamError

        self.rejection = BitstreamError
        if target == "render":
            # numba compiles the CPU kernels at their first call (seconds of CPU unless cached):
            # here, outside every input's time limit.
            import torch

            from stgvcodec.model.encoding import HashGrid
            from stgvcodec.render import rasterize

            rasterize(torch.zeros(1, 2), torch.ones(1, 3), torch.ones(1, 3), 4, 4, backend="cpu")
            with torch.no_grad():
                HashGrid(3, levels=1, log2_table_size=4)(torch.zeros(1, 3))

    def _import(self, atheris):
        if self.target == SELFTEST:
            return _selftest
        # Kernels compiled by numba or Triton must keep their bytecode: only pure-Python modules
        # of stgvcodec are instrumented, and torch, numpy and numba are imported first.
        import constriction  # noqa: F401
        import numba  # noqa: F401
        import numpy  # noqa: F401
        import torch  # noqa: F401

        if atheris is None:
            return _targets()[self.target]
        excluded = ["stgvcodec.render.cpu", "stgvcodec.render.triton", "stgvcodec.entropy.adaptive"]
        with atheris.instrument_imports(include=["stgvcodec"], exclude=excluded):
            return _targets()[self.target]

    def check(self, data: bytes) -> None:
        """Runs the input; raises on anything but BitstreamError (atheris reports what escapes)."""
        if self.target in ("symbols", SELFTEST):
            try:
                self.run_input(data)
            except self.rejection:
                pass
            return
        self.file.write_bytes(data)
        try:
            self.run_input(self.file)
        except self.rejection:
            pass

    @contextlib.contextmanager
    def limits(self, data: bytes):
        """The body is one input: `data` is written to `current` first (if the process dies, the
        driver finds it there), and the process dies by SIGPROF once the body has used --timeout
        seconds of CPU time (ITIMER_PROF counts every thread's user and system time)."""
        self.current.write_bytes(data)
        signal.setitimer(signal.ITIMER_PROF, self.timeout)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)

    def run(self, data: bytes) -> dict | None:
        """Runs the input with the time and memory checks; a failure as a dict, else None."""
        try:
            with self.limits(data):
                self.check(data)
        except Exception as error:  # noqa: BLE001 - anything but BitstreamError is a finding
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            print(traceback.format_exc(), file=sys.stderr)
            return {"kind": "exception", "message": text}
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        if peak > self.rss_mb:
            return {"kind": "memory", "message": f"peak RSS {peak} MB above {self.rss_mb} MB"}
        return None


def _targets() -> dict:
    """The target functions, importing stgvcodec (under instrumentation when the caller asks)."""
    import numpy as np
    import torch

    from stgvcodec.bitstream import BitstreamError, StgvReader
    from stgvcodec.bitstream.gop import stream_sizes
    from stgvcodec.bitstream.model_config import unpack_model_config
    from stgvcodec.decode import gop_model, read_gop, render_gop, tensor_sizes
    from stgvcodec.entropy import decode_symbols, encode_symbols

    cpu = torch.device("cpu")

    def gops(path: Path, parse: bool):
        """(header, config, sizes, entry, payload or (record, canonical Gaussians)) of every GoP that
        reads (and parses, when asked, with the previous GoP's Gaussians as a predicted GoP's reference)."""
        with StgvReader(path) as reader:
            reader.sizes()
            config = unpack_model_config(reader.header.config)
            sizes = tensor_sizes(config)
            if parse and sum(sizes) > PAYLOAD_MAX_WEIGHTS:
                return
            reference = None
            for k, entry in enumerate(reader.gops):
                try:
                    payload = reader.read_chunk(k)
                    stream_sizes(payload, entry.predicted, reader.header.version)
                    if not parse:
                        yield reader.header, config, sizes, entry, payload
                        continue
                    parsed = read_gop(reader, k, sizes, reference)
                    reference = parsed[1]
                    yield reader.header, config, sizes, entry, parsed
                except BitstreamError:
                    reference = None  # a damaged GoP leaves the others readable, but not its dependants
                    continue

    def container(path: Path) -> None:
        for _ in gops(path, parse=False):
            pass

    def payload(path: Path) -> None:
        for _ in gops(path, parse=True):
            pass

    def render(path: Path) -> None:
        for k, (header, config, sizes, entry, (record, canonical)) in enumerate(gops(path, parse=True)):
            if k >= RENDER_MAX_GOPS or sum(sizes) > RENDER_MAX_WEIGHTS or len(canonical) > RENDER_MAX_GAUSSIANS:
                continue
            height, width = min(header.height, RENDER_SIDE), min(header.width, RENDER_SIDE)
            count = min(entry.frame_count, RENDER_FRAMES)
            frames = render_gop(gop_model(record, config, cpu, canonical), count, height, width)
            assert frames.shape == (count, height, width, 3) and frames.dtype == np.uint8, frames.shape

    def symbols(data: bytes) -> None:
        values, end = decode_symbols(data, 0, max_count=SYMBOLS_MAX_COUNT)
        assert 0 < end <= len(data) and values.dtype == np.int32, (end, values.dtype)
        again, _ = decode_symbols(encode_symbols(values), 0, max_count=len(values))
        assert np.array_equal(again, values), "re-encoded symbols decode differently"

    return {"container": container, "payload": payload, "render": render, "symbols": symbols}


def _selftest(data: bytes) -> None:
    """Misbehaves as the input asks: the failures the harness must report."""
    if data.startswith(b"raise"):
        raise RuntimeError("selftest exception")
    if data.startswith(b"segv"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if data.startswith(b"hang"):
        while True:  # a decoder that hangs loops, using CPU
            pass
    if data.startswith(b"sleep"):
        time.sleep(3)
    if data.startswith(b"memory"):
        block = bytearray(1 << 30)
        block[:: 1 << 12] = b"\x01" * len(block[:: 1 << 12])  # touch every page: 1 GiB resident
        time.sleep(2.5)  # libFuzzer samples RSS once a second


# ----------------------------------------------------------------------------------------------
# Structure-aware mutation of .stgv files.

_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_ENTRY = struct.Struct("<IIQI")  # first frame, frame count, offset, length; versions 3 on add a flags byte
_FLAG_VALUES = [0, 1, 2, 3, 0x80, 0xFF]
"""Flags bytes the mutator writes: key, predicted, and reserved bits set."""


@dataclass
class Layout:
    """A .stgv file taken apart without validation: enough to mutate a part and rebuild it."""

    header: bytes  # magic, version, body length, body (the CRC is recomputed)
    frames: list[tuple[int, int]]  # (first frame, frame count) of each index entry
    payloads: list[bytes] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)  # flags byte of each index entry (version 3 on)

    @property
    def version(self) -> int:
        return _U16.unpack_from(self.header, 4)[0]

    def predicted(self, k: int) -> bool:
        """Whether index entry k marks a predicted GoP."""
        return k < len(self.flags) and bool(self.flags[k] & 1)


def _entry_size(header: bytes) -> int:
    """Bytes of an index entry: 21 (flags last) from version 3 on, 20 in version 2."""
    return _ENTRY.size + 1 if _U16.unpack_from(header, 4)[0] >= 3 else _ENTRY.size


def split_stgv(data: bytes) -> Layout | None:
    """The parts of a file, read as leniently as possible; None if there is no index to find."""
    if len(data) < 14:
        return None
    body = _U32.unpack_from(data, 6)[0]
    at = 10 + body + 4
    if at + 4 > len(data):
        return None
    count = _U32.unpack_from(data, at)[0]
    size = _entry_size(data)
    if count > 4096 or at + 8 + count * size > len(data):
        return None
    layout = Layout(bytes(data[: 10 + body]), [])
    for k in range(count):
        first, frames, offset, length = _ENTRY.unpack_from(data, at + 4 + k * size)
        layout.frames.append((first, frames))
        if size > _ENTRY.size:
            layout.flags.append(data[at + 4 + k * size + _ENTRY.size])
        payload = data[offset + 4 : offset + length - 4] if offset + length <= len(data) and length >= 8 else b""
        layout.payloads.append(bytes(payload))
    return layout


def join_stgv(layout: Layout) -> bytes:
    """A file with consistent framing: header CRC, index offsets, lengths and CRC, chunk CRCs."""
    header = layout.header + _U32.pack(zlib.crc32(layout.header))
    count = len(layout.frames)
    size = _entry_size(layout.header)
    offset = len(header) + 8 + count * size
    entries = []
    for k, ((first, frames), payload) in enumerate(zip(layout.frames, layout.payloads)):
        flags = bytes([layout.flags[k] if k < len(layout.flags) else 0]) if size > _ENTRY.size else b""
        entries.append(_ENTRY.pack(first, frames, offset, len(payload) + 8) + flags)
        offset += len(payload) + 8
    index = _U32.pack(count) + b"".join(entries)
    chunks = [_U32.pack(len(p)) + p + _U32.pack(zlib.crc32(p)) for p in layout.payloads]
    return header + index + _U32.pack(zlib.crc32(index)) + b"".join(chunks)


def split_streams(payload: bytes, version: int = 5, predicted: bool = False) -> list[tuple[int, bytes]] | None:
    """(id, data) records of a payload, or None if they do not parse: the framing up to version 5,
    from version 6 the layout the decoder reads (stgvcodec.bitstream.gop.split_payload)."""
    from stgvcodec.bitstream import BitstreamError
    from stgvcodec.bitstream.gop import split_payload
    from stgvcodec.entropy.varint import read_uvarint

    if version >= 6:
        try:
            return [(i, bytes(v)) for i, v in split_payload(payload, predicted, version)[0]]
        except BitstreamError:
            return None
    streams, at, view = [], 0, memoryview(payload)
    try:
        while at < len(payload):
            length, start = read_uvarint(view, at + 1, "length")
            if start + length > len(payload):
                return None
            streams.append((payload[at], payload[start : start + length]))
            at = start + length
    except ValueError:
        return None
    return streams


def join_streams(streams: list[tuple[int, bytes]], version: int = 5) -> bytes:
    """A payload of (id, data) records: framed up to version 5, one after another from 6."""
    from stgvcodec.entropy.varint import write_uvarint

    if version >= 6:
        return b"".join(d for _, d in streams)
    return b"".join(bytes([i & 0xFF]) + write_uvarint(len(d)) + d for i, d in streams)


def coded_streams(data: bytes) -> list[bytes]:
    """Every coded symbol stream (all streams but PARAMS) in the chunks of a .stgv file."""
    layout = split_stgv(data)
    out = []
    for k, payload in enumerate(layout.payloads if layout else []):
        streams = split_streams(payload, layout.version, layout.predicted(k)) or []
        out += [d for i, d in streams if i != 1]
    return out


_FLOATS32 = [float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 65536.0, 65536.01, -65536.0, 0.0, -0.0, 1e-45,
             1e-38, 3.4e38, 2e21, 1.0]
_FLOATS16 = [float("nan"), float("inf"), float("-inf"), 65504.0, -65504.0, 6e-8, 0.0, -0.0]
_INTEGERS = [0, 1, 2, 7, 8, 9, 255, 256, 4095, 4096, 4097, 65535, 65536, (1 << 22), (1 << 22) + 1, (1 << 32) - 1]


def mutate_stgv(data: bytes, max_size: int, rng: random.Random, mutate) -> bytes:
    """One structure-aware mutation of a .stgv file (see the module docstring).

    Args:
        data: the file.
        max_size: largest result libFuzzer accepts.
        rng: source of every choice.
        mutate: byte mutator, mutate(data, max_size) -> bytes (atheris.Mutate, or _random_bytes).
    """
    layout = split_stgv(data)
    choice = rng.random()
    if layout is None or not layout.payloads or choice < 1 / 6:
        return mutate(data, max_size)  # framing left as it is
    k = rng.randrange(len(layout.payloads))
    if choice < 0.55:
        version = layout.version
        streams = split_streams(layout.payloads[k], version, layout.predicted(k))
        if streams:
            s = rng.randrange(len(streams))
            stream_id, stream = streams[s]
            if stream_id == 1 and rng.random() < 0.5:
                stream = _mutate_params(stream, rng, version)
            else:
                stream = mutate(stream, max(len(stream) * 2, 64))
            streams[s] = (stream_id, stream)
            layout.payloads[k] = join_streams(streams, version)
        else:
            layout.payloads[k] = mutate(layout.payloads[k], max(len(layout.payloads[k]) * 2, 64))
    elif choice < 0.75:
        layout.payloads[k] = mutate(layout.payloads[k], max(len(layout.payloads[k]) * 2, 64))
    elif choice < 0.85:
        layout.header = layout.header[:10] + mutate(layout.header[10:], 4096)
        layout.header = layout.header[:6] + _U32.pack(len(layout.header) - 10) + layout.header[10:]
    elif choice < 0.92:
        other = rng.randrange(len(layout.payloads))
        layout.payloads[k] = layout.payloads[other]
    elif layout.flags and rng.random() < 0.5:  # version 3 on only, so version-2 mutations stay as they were
        layout.flags[k] = rng.choice(_FLAG_VALUES)
    else:
        first, frames = layout.frames[k]
        first, frames = rng.choice([first, first + 1, 0]), rng.choice([frames, frames + 1, 1, 0])
        layout.frames[k] = (first & 0xFFFFFFFF, frames & 0xFFFFFFFF)
    result = join_stgv(layout)
    return result if len(result) <= max_size else data


def _mutate_params(params: bytes, rng: random.Random, version: int) -> bytes:
    """PARAMS with one number replaced: a head integer, or a float32 / float16 by an extreme value."""
    out = bytearray(params)
    head = 12 if version >= 5 else 11  # version 5 has the position grid S after P
    if len(out) < head:
        return bytes(out)
    pick = rng.random()
    if pick < 0.3:  # head: N u32 @0, M u8 @4, B u16 @5, K u8 @7, P u8 @8, (S u8 @9,) first x key u16 @head-2
        fields = [(0, "<I"), (4, "<B"), (5, "<H"), (7, "<B"), (8, "<B"), (head - 2, "<H")] + [(9, "<B")] * (head - 11)
        at, fmt = rng.choice(fields)
        value = rng.choice(_INTEGERS) & ((1 << (8 * struct.calcsize(fmt))) - 1)
        struct.pack_into(fmt, out, at, value)
    elif pick < 0.7 and len(out) >= head + 4:  # gamma, beta (head .. head + 24), or a tensor scale at the end
        scales = [len(out) - 4 * j for j in range(1, 9) if len(out) - 4 * j >= head + 24]
        slots = list(range(head, min(head + 24, len(out) - 3), 4)) + scales
        struct.pack_into("<f", out, rng.choice(slots), rng.choice(_FLOATS32))
    elif len(out) >= head + 28:  # a float16 after gamma and beta: a codebook value (or, in version 5,
        at = head + 24 + 2 * rng.randrange((len(out) - head - 26) // 2)  # the codebook step), or a scale
        struct.pack_into("<e", out, at, rng.choice(_FLOATS16))
    return bytes(out)


def _random_bytes(data: bytes, max_size: int, rng: random.Random) -> bytes:
    """A libFuzzer-like byte mutation for the random engine: flip, set, insert, erase or copy."""
    out = bytearray(data)
    kind = rng.randrange(6)
    if not out or kind == 0:
        out[rng.randrange(len(out) + 1) : 0] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif kind == 1:
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == 2:
        out[rng.randrange(len(out))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif kind == 3:
        at = rng.randrange(len(out))
        del out[at : at + rng.randint(1, 16)]
    elif kind == 4 and len(out) >= 4:
        at = rng.randrange(len(out) - 3)
        out[at : at + 4] = struct.pack("<I", rng.choice(_INTEGERS))
    else:
        a, b = rng.randrange(len(out)), rng.randrange(len(out))
        size = rng.randint(1, 32)
        out[b : b + size] = out[a : a + size]
    return bytes(out[:max_size])


# ----------------------------------------------------------------------------------------------
# Seeds.

SEED_ENCODES = {
    "hash-8bit": dict(model=dict(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1),
                      quant=dict(codebook_size=8), size=(12, 16), frames=5, gop=3),
    "plane-8bit": dict(model=dict(encoding="plane", plane_resolution=4, plane_time_resolution=3, plane_features=2,
                                  width=8), quant=dict(codebook_size=8), size=(12, 16), frames=5, gop=3),
    "positional-3bit": dict(model=dict(encoding="positional", position_frequencies=2, width=8),
                            quant=dict(codebook_size=4, rvq_stages=1, network_bits=3), size=(9, 7), frames=4, gop=2),
    "hash-odd-size": dict(model=dict(log2_table_size=4, levels=2, width=4, temporal_features=1, spatial_features=1,
                                     time_frequencies=1), quant=dict(codebook_size=16, network_bits=5),
                          size=(5, 11), frames=3, gop=3),
    "hash-predicted": dict(model=dict(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1),
                           quant=dict(codebook_size=8), size=(12, 16), frames=9, gop=3),
    "hash-predicted-v4": dict(model=dict(log2_table_size=4, levels=3, width=8, temporal_features=2, spatial_features=1),
                              quant=dict(codebook_size=4, network_bits=6), size=(10, 14), frames=9, gop=3),
    "plane-predicted-v5": dict(model=dict(encoding="plane", plane_resolution=4, plane_time_resolution=3, plane_features=2,
                                          width=8), quant=dict(codebook_size=4, network_bits=5), size=(11, 13), frames=9, gop=3),
    "hash-predicted-v6": dict(model=dict(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1),
                              quant=dict(codebook_size=8, network_bits=6), size=(13, 12), frames=9, gop=3),
}  # fmt: skip
"""Tiny encodes: every encoding, several precisions and codebooks, odd sizes, one to three GoPs
(hash-predicted, hash-predicted-v4, plane-predicted-v5 and hash-predicted-v6: a key GoP and two
predicted ones, which from version 4 inherit the key GoP's quantizers; version 5 codes positions on
a grid; version 6 codes most streams ADAPTIVE). Each seed is a file of the version current when it
was written."""


def make_seeds(folder: Path, names: list[str] | None = None) -> list[Path]:
    """Encodes a synthetic clip for every entry of SEED_ENCODES (or those `names`) into
    `folder`/<name>.stgv."""
    from stgvcodec.api import encode
    from stgvcodec.config import FitConfig, ModelConfig
    from stgvcodec.quant.qat import QuantConfig

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, spec in SEED_ENCODES.items():
            if names is not None and name not in names:
                continue
            height, width = spec["size"]
            clip = _write_clip(Path(scratch) / f"{name}.mkv", spec["frames"], height, width)
            path = folder / f"{name}.stgv"
            fit = FitConfig(init_steps=20, deform_steps=20)
            quant, model = QuantConfig(steps=5, **spec["quant"]), ModelConfig(**spec["model"])
            encode(clip, path, gaussians=24, gop_size=spec["gop"], fit=fit, quant=quant, model=model, quiet=True)
            written.append(path)
    return written


def _write_clip(path: Path, frames: int, height: int, width: int) -> Path:
    """A lossless (ffv1) clip of a colour gradient with a square moving across it."""
    from fractions import Fraction

    import av
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        stream.codec_context.time_base = Fraction(1, 25)
        for t in range(frames):
            rgb = np.stack((x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, 60)), -1)
            rgb[height // 4 : height // 4 + 3, t : t + 3] = 250
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24").reformat(format="bgr0")
            frame.pts = t
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


if __name__ == "__main__":
    main()
