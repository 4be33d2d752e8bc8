"""File-system faults outside extraction's commit: read-only stores and folders, no locks, a full disk.

Each fault is built by making the OS call fail with the errno the real file system gives
(``EROFS``, ``ENOLCK``, ``ENOSPC``) for paths under one folder: chmod does not stop root,
and the tests may run as root. Every command must answer in one line naming the path, the
OS error, what was kept and what to do (exit 1, no traceback), and leave no partial file.
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import Callable

import pytest

from pipeline.files import FileFault, os_error_text, write_atomic
from tests import stage2_fixtures
from tests.stage2_fixtures import TinyPipeline, invoke

tiny_pipeline = stage2_fixtures.tiny_pipeline

_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT


def _under(path: object, folder: Path) -> bool:
    return str(os.path.abspath(os.fspath(path))).startswith(str(folder.resolve()) + os.sep)  # type: ignore[arg-type]


def read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Below ``folder``, creating or opening for writing fails with EROFS, as on a read-only mount."""
    real_open, real_mkdir = os.open, os.mkdir

    def fake_open(path, flags, *args, **kwargs):  # noqa: ANN001, ANN202
        if flags & _WRITING and _under(path, folder):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):  # noqa: ANN001, ANN202
        if _under(path, folder) and not os.path.isdir(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def disk_full(monkeypatch: pytest.MonkeyPatch, folder: Path, name: Callable[[str], bool] = lambda n: True) -> None:
    """Below ``folder`` (files whose name passes ``name``), ``os.write`` fails with ENOSPC."""
    real_write = os.write

    def fake_write(fd: int, data) -> int:  # noqa: ANN001
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target and _under(target, folder) and name(os.path.basename(target)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", fake_write)


def _one_line(output: str, *words: str) -> str:
    line = output.strip()
    assert "\n" not in line and "Traceback" not in line, output
    for word in words:
        assert word in line, (word, line)
    return line


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp")
                  or p.name.startswith(".tmp-"))


# ---- the helper itself ------------------------------------------------------------------------

def test_write_atomic_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out" / "metrics.json"
    write_atomic(target, "old\n")
    disk_full(monkeypatch, tmp_path)
    with pytest.raises(FileFault) as info:
        write_atomic(target, "new\n" * 1000)
    message = _one_line(str(info.value), str(target), "no space left on device (ENOSPC)",
                        "the previous metrics.json is unchanged", "free space")
    assert message.startswith(str(target))
    assert target.read_text() == "old\n" and _leftovers(tmp_path) == []


def test_a_read_only_folder_names_the_file_or_folder_never_the_temporary(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    read_only(monkeypatch, folder)
    with pytest.raises(FileFault) as info:
        write_atomic(folder / "report.md", "x")
    message = _one_line(str(info.value), "read-only file system (EROFS)", "nothing was written")
    assert message.startswith(f"{folder / 'report.md'}: ") and ".tmp" not in message
    with pytest.raises(FileFault) as info:
        write_atomic(folder / "new" / "report.md", "x")
    assert str(info.value).startswith(f"{folder / 'new'}: read-only file system (EROFS) while writing report.md")
    assert list(folder.iterdir()) == []


def test_os_error_text_names_the_errno() -> None:
    assert os_error_text(OSError(errno.EROFS, os.strerror(errno.EROFS))) == "read-only file system (EROFS)"
    assert os_error_text(OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))) == "no locks available (ENOLCK)"


# ---- stores: a read-only store, a file system without locks ----------------------------------

def test_extract_on_a_read_only_store_with_nothing_left_to_do(tiny_pipeline: TinyPipeline,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    read_only(monkeypatch, tiny_pipeline.store)
    result = invoke(tiny_pipeline.params, "extract", "--teacher", "musicnn", "--no-progress")
    assert result.exit_code == 1
    _one_line(result.stderr, str(tiny_pipeline.store / ".lock"), "read-only file system (EROFS)",
              "the store is unchanged and keeps its committed tracks", "dvc push")


def test_a_file_system_without_locks_is_one_line_not_two_tracebacks(tiny_pipeline: TinyPipeline,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real_flock = fcntl.flock

    def no_locks(fd: int, operation: int) -> None:
        if operation & (fcntl.LOCK_EX | fcntl.LOCK_SH):
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", no_locks)
    result = invoke(tiny_pipeline.params, "extract", "--teacher", "musicnn", "--no-progress")
    assert result.exit_code == 1
    _one_line(result.stderr, str(tiny_pipeline.store / ".lock"), "no locks available (ENOLCK)",
              "the store is unchanged", "local disk")


# ---- distill: a read-only working directory, a full disk at the checkpoint ----------------------

def _distill(tiny: TinyPipeline, run_dir: Path, variant: str = "east-final"):  # noqa: ANN202
    return invoke(tiny.params, "distill", "--variant", variant, "--run-dir", str(run_dir), "--no-progress")


def _read_only_cwd(monkeypatch: pytest.MonkeyPatch, cwd: Path, *, home_cache: Path) -> None:
    """Work in ``cwd``, a read-only folder, with the user cache at ``home_cache`` and no $EAST_CACHE_DIR."""
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("EAST_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home_cache))
    read_only(monkeypatch, cwd)


def test_distill_from_a_read_only_working_directory_falls_back_to_a_writable_cache(
        tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    _read_only_cwd(monkeypatch, tmp_path / "read-only", home_cache=tmp_path / "home-cache")
    result = _distill(tiny_pipeline, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "last.pt").is_file()
    assert any((tmp_path / "home-cache" / "east-pipeline" / "memmap").iterdir())
    assert "not writable (read-only file system (EROFS))" in caplog.text


def test_distill_with_no_writable_cache_anywhere_is_one_line(tiny_pipeline: TinyPipeline, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    cwd = tmp_path / "read-only"
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(cwd / "tmp"))
    _read_only_cwd(monkeypatch, cwd, home_cache=cwd / "home")
    result = _distill(tiny_pipeline, tmp_path / "run")
    assert result.exit_code == 1
    _one_line(result.stderr, ".cache/memmap", "read-only file system (EROFS)", "nothing was copied",
              "EAST_CACHE_DIR", "distill.loader: store")
    assert not (tmp_path / "run").exists()


def test_a_full_disk_while_the_memmap_cache_is_copied(tiny_pipeline: TinyPipeline, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EAST_CACHE_DIR", str(cache))
    real_fsync = os.fsync

    def full(fd: int) -> None:  # the memmap parts are written by numpy: the disk fills at their fsync
        if _under(os.readlink(f"/proc/self/fd/{fd}"), cache):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    result = _distill(tiny_pipeline, tmp_path / "run")
    assert result.exit_code == 1
    _one_line(result.stderr, str(cache), "no space left on device (ENOSPC)", "no partial copy is left",
              "EAST_CACHE_DIR")
    assert list(cache.iterdir()) == []


def test_a_full_disk_at_the_checkpoint_keeps_nothing_half_written(tiny_pipeline: TinyPipeline, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    disk_full(monkeypatch, run, lambda name: name.startswith(".last.pt"))
    result = _distill(tiny_pipeline, run)
    assert result.exit_code == 1
    _one_line(result.stderr, str(run / "last.pt"), "no space left on device (ENOSPC)", "no checkpoint was kept",
              "run the same command again")
    assert _leftovers(run) == [] and not (run / "last.pt").exists()


# ---- every other file the commands write -------------------------------------------------------

@pytest.mark.parametrize("command", ["prepare", "probe", "evaluate", "report", "export", "store-export"])
def test_every_output_refused_by_a_full_disk_is_one_line_and_no_partial_file(
        tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    import shutil

    out = tmp_path / "out"
    if command == "evaluate":  # a copy of a finished run: evaluate writes into the run folder
        shutil.copytree(tiny_pipeline.run_dir("baseline"), out)
    disk_full(monkeypatch, out)
    args = {
        "prepare": ["prepare", "folder", "--audio", str(tiny_pipeline.audio_root), "--labels",
                    str(tiny_pipeline.audio_root / "labels.csv"), "--manifests", str(out)],
        "probe": ["probe", "--teacher", "musicnn", "--out", str(out)],
        "evaluate": ["evaluate", str(out)],
        "report": ["report", "--out", str(out)],
        "export": ["export", str(tiny_pipeline.run_dir("baseline")), "--format", "onnx", "--out",
                   str(out / "model.onnx")],
        "store-export": ["store", "export", str(tiny_pipeline.store), "--format", "npy", "--out", str(out)],
    }[command]
    result = invoke(tiny_pipeline.params, *args)
    assert result.exit_code == 1, result.output
    _one_line(result.stderr, str(out), "no space left on device (ENOSPC)", "free space")
    assert _leftovers(out) == []
