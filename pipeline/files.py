"""Every file the commands write goes through here: atomic, and a refusal is one line.

A file system can refuse a write for reasons the user must act on: a full disk (``ENOSPC``),
a quota (``EDQUOT``), a read-only mount (``EROFS``), permissions (``EACCES``), a network file
system without locks (``ENOLCK``). :func:`write_atomic` (text or bytes), :func:`write_json`
and :func:`write_rendered` write through a temporary file in the target's folder, ``fsync``
and ``os.replace`` (:func:`replace_atomically`, the one such writer of the pipeline), so the
target is either the old file or the whole new one and no temporary file is left behind; :func:`fs_faults` turns an
``OSError`` into a :class:`FileFault` whose message is one line: the path, the OS error, what
was kept and what to do. The CLI prints it and exits 1, like every ``PipelineError``.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

from pipeline.errors import PipelineError

#: What to do about an errno, when the caller has nothing more precise to say.
_ADVICE = {
    errno.ENOSPC: "free space on that file system and run the same command again",
    errno.EDQUOT: "free space or raise the quota, then run the same command again",
    errno.EROFS: "run it where that folder is writable (or point the output elsewhere)",
    errno.EACCES: "make that folder writable for this user (or point the output elsewhere)",
    errno.EPERM: "make that folder writable for this user (or point the output elsewhere)",
    errno.ENOLCK: "use a file system with working locks (a local disk, or NFS with lockd running)",
}


class FileFault(PipelineError):
    """The file system refused an operation on ``path`` (disk full, read-only, no locks, ...).

    Attributes:
        path: the file or folder concerned.
        errno: the ``OSError``'s errno (None when it had none).
    """

    def __init__(self, message: str, *, path: Path | str, errno: int | None) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.errno = errno


def os_error_text(exc: OSError) -> str:
    """``exc`` as ``"no space left on device (ENOSPC)"``: the OS's words, lowercase, and the errno name."""
    code = exc.errno
    words = (exc.strerror or (os.strerror(code) if code else str(exc)) or type(exc).__name__).rstrip(".")
    words = words[:1].lower() + words[1:]
    name = errno.errorcode.get(code, "") if code is not None else ""
    return f"{words} ({name})" if name else words


def file_fault(path: Path | str, exc: OSError, *, doing: str, kept: str, todo: str | None = None) -> FileFault:
    """The one-line :class:`FileFault` for ``exc`` while ``doing`` something with ``path``.

    Args:
        path: the file or folder the operation was on.
        exc: the OS error.
        doing: what was being done (``"writing the checkpoint"``).
        kept: what is still there (``"the previous last.pt is kept"``).
        todo: what the user should do; default by errno.
    """
    advice = todo or _ADVICE.get(exc.errno or 0, "fix the cause and run the same command again")
    return FileFault(f"{path}: {os_error_text(exc)} while {doing}; {kept}; {advice}",
                     path=path, errno=exc.errno)


@contextmanager
def fs_faults(path: Path | str, *, doing: str, kept: str, todo: str | None = None) -> Iterator[None]:
    """Within the block an ``OSError`` becomes the one-line :class:`FileFault` of :func:`file_fault`.

    Raises:
        FileFault: the block raised an ``OSError``.
    """
    try:
        yield
    except FileFault:
        raise
    except OSError as exc:
        raise file_fault(_where(path, exc), exc, doing=doing, kept=kept, todo=todo) from None


def _where(path: Path | str, exc: OSError) -> Path | str:
    """``path``, or the folder above it that the error names (a temporary file's name is never shown)."""
    named = exc.filename
    if isinstance(named, (str, os.PathLike)) and Path(path).is_relative_to(Path(named)):
        return Path(named)
    return path


def replace_atomically(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in its folder, ``fsync`` and ``os.replace``.

    The folder is created. On any failure (or interrupt) the temporary file is removed and
    ``path`` is untouched.

    Raises:
        OSError: as the file system reports it (callers turn it into a :class:`FileFault`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path | str, content: bytes | str, *, what: str = "", kept: str = "",
                 todo: str | None = None) -> None:
    """Write ``content`` (str as UTF-8) to ``path`` atomically; a refusal is one :class:`FileFault`.

    Args:
        path: the target file (its folder is created).
        content: the whole file.
        what: names the file in the message (default its name).
        kept: what is kept when the write fails (default: the old file, or nothing).
        todo: what to do (default by errno).

    Raises:
        FileFault: the file system refused the write; ``path`` is as it was, no temporary file remains.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    existed = Path(path).exists()
    kept = kept or (f"the previous {Path(path).name} is unchanged" if existed else "nothing was written")
    with fs_faults(path, doing=f"writing {what or Path(path).name}", kept=kept, todo=todo):
        replace_atomically(path, data)


def json_text(data: Any, *, indent: int = 2, default: Callable[[Any], Any] | None = None) -> str:
    """``data`` as indented JSON text ending in a newline.

    Args:
        data: JSON-friendly data.
        indent: spaces per nesting level.
        default: turns a value :mod:`json` cannot write into one it can (e.g. ``str``,
            :func:`dataclasses.asdict`).

    Raises:
        TypeError: a value is not JSON-friendly and ``default`` does not make it so.
    """
    return json.dumps(data, indent=indent, default=default) + "\n"


def write_json(path: Path | str, data: Any, *, indent: int = 2, default: Callable[[Any], Any] | None = None,
               what: str = "", kept: str = "", todo: str | None = None) -> None:
    """Write ``data`` as :func:`json_text` to ``path`` atomically; a refusal is one :class:`FileFault`.

    Args:
        path: the target file (its folder is created).
        data, indent, default: as :func:`json_text`.
        what, kept, todo: as :func:`write_atomic`.

    Raises:
        FileFault: as :func:`write_atomic`.
        TypeError: as :func:`json_text` (nothing is written).
    """
    write_atomic(path, json_text(data, indent=indent, default=default), what=what, kept=kept, todo=todo)


def rendered(render: Callable[[BinaryIO], None]) -> bytes:
    """The bytes ``render(handle)`` writes to a binary handle (rendered in memory)."""
    buffer = io.BytesIO()
    render(buffer)
    return buffer.getvalue()


def write_rendered(path: Path | str, render: Callable[[BinaryIO], None], **options: str | None) -> None:
    """Write what ``render(handle)`` produces (``torch.save``, ``np.save``, ``savefig``) atomically.

    The bytes are rendered in memory first, so a library's own writer never sees the file
    system's error (torch reports a full disk as "unexpected pos").

    Args:
        path: the target file.
        render: writes the file's bytes to the binary handle it is given.
        options: ``what``, ``kept``, ``todo`` of :func:`write_atomic`.

    Raises:
        FileFault: as :func:`write_atomic`.
    """
    write_atomic(path, rendered(render), **options)  # type: ignore[arg-type]


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """``rows`` as CSV text (``\\r\\n`` line ends, as :mod:`csv` writes them), for :func:`write_atomic`."""
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue()


def writable_folder(folder: Path | str) -> OSError | None:
    """None when a file can be created in ``folder`` (created if needed), else the OS error."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        return exc
    return None
