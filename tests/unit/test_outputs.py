"""stgvcodec.io.outputs: an output is refused before any work when it is an input or cannot be written."""

import os

import pytest

from stgvcodec.io.outputs import OutputError, check_output, same_file


def test_same_file_sees_through_links(tmp_path):
    source = tmp_path / "in.mp4"
    source.write_bytes(b"video")
    (tmp_path / "sym.mp4").symlink_to(source)
    os.link(source, tmp_path / "hard.mp4")
    for name in ("in.mp4", "sym.mp4", "hard.mp4", "./in.mp4", "sub/../in.mp4"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert same_file(tmp_path / name, source), name
    assert not same_file(tmp_path / "new.stgv", source)


def test_refusals_name_the_output_and_leave_nothing(tmp_path):
    source = tmp_path / "in.mp4"
    source.write_bytes(b"video")
    (tmp_path / "dir.stgv").mkdir()
    cases = [
        (source, {}, "refusing to overwrite"),
        (tmp_path / "dir.stgv", {}, "is a directory"),
        (tmp_path / "missing" / "x.stgv", {}, "not an existing directory"),
        (tmp_path / "x.stgv", {"expected_bytes": 1 << 62}, "MB free"),
    ]
    for output, options, message in cases:
        with pytest.raises(OutputError, match=message) as error:
            check_output(output, (source,), **options)
        assert str(output) in str(error.value) and "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.stgv", "in.mp4"]
    check_output(tmp_path / "x.stgv", (source,), expected_bytes=1000)
    check_output(tmp_path / "dir.stgv", (source,), directory=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.stgv", "in.mp4"]
