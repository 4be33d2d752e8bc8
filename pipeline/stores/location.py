"""Where a store lives: a local folder, or any fsspec URL (``s3://...``: see :mod:`.remote`).

Local stores use plain file I/O; URLs (``file://``, ``s3://``, ``memory://`` ...) go
through fsspec, imported only when a URL is given.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any

from pipeline.errors import StoreError


def is_url(path_or_url: str | os.PathLike) -> bool:
    """Whether ``path_or_url`` is an fsspec URL (``scheme://...``) rather than a local path."""
    return isinstance(path_or_url, str) and "://" in path_or_url


class Location:
    """A store root: relative names (``parts/part-000000.json``) resolve against it.

    Args:
        path_or_url: local folder or fsspec URL.
    """

    def __init__(self, path_or_url: str | os.PathLike) -> None:
        self.fs: Any = None
        self.local: Path | None = None
        if is_url(path_or_url):
            try:
                from fsspec.core import url_to_fs
            except ImportError as exc:  # pragma: no cover - fsspec ships with zarr's extras
                raise StoreError(f"opening {path_or_url!r} needs fsspec: pip install fsspec") from exc
            self.url = str(path_or_url).rstrip("/")
            try:
                self.fs, self.root = url_to_fs(self.url)
            except (ValueError, ImportError) as exc:
                raise StoreError(f"cannot open store URL {self.url!r}: {exc}") from None
            self.root = self.root.rstrip("/")
            protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
            self.is_local_fs = "file" in protocols or "local" in protocols
        else:
            self.local = Path(path_or_url)
            self.url = str(self.local)
            self.root = str(self.local)
            self.is_local_fs = True

    def __str__(self) -> str:
        return self.url

    def join(self, rel: str) -> str:
        """Path or URL of ``rel`` (what zarr or h5py is given)."""
        if self.local is not None:
            return str(self.local / rel)
        return f"{self.url}/{rel}"

    def fs_path(self, rel: str) -> str:
        """``rel`` as a path on :attr:`fs` (or the local file system)."""
        return str(self.local / rel) if self.local is not None else f"{self.root}/{rel}"

    def contained(self, rel: str) -> Path | None:
        """The local path of ``rel``, refused when it or anything under it resolves outside the store.

        A store comes from someone else: a symlink in it must not lead a reader or a writer
        to files elsewhere. Returns None for stores that are not on a local file system.

        Raises:
            StoreError: naming the path and where it points.
        """
        if self.local is None and not self.is_local_fs:
            return None
        root = Path(self.root).resolve()
        path = Path(self.fs_path(rel))
        _check_inside(path, root)
        if path.is_dir() and not path.is_symlink():
            for folder, dirs, names in os.walk(path):
                for name in dirs + names:
                    entry = Path(folder) / name
                    if entry.is_symlink():
                        _check_inside(entry, root)
        return path

    def read_text(self, rel: str) -> str:
        """Text of ``rel``; FileNotFoundError when absent; at most :data:`MAX_JSON_BYTES` bytes."""
        local = self.contained(rel)
        if local is not None:
            with open(local, "rb") as handle:  # read() of the size, not of the limit: no 512 MiB buffer
                data = handle.read(min(os.fstat(handle.fileno()).st_size, MAX_JSON_BYTES) + 1)
        else:
            with self.fs.open(self.fs_path(rel), "rb") as handle:
                size = self.fs.size(self.fs_path(rel))
                data = handle.read(MAX_JSON_BYTES + 1 if size is None else min(int(size), MAX_JSON_BYTES) + 1)
        if len(data) > MAX_JSON_BYTES:
            raise StoreError(f"{self.join(rel)} is larger than {MAX_JSON_BYTES >> 20} MiB; not a store file")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreError(f"{self.join(rel)} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None

    def exists(self, rel: str) -> bool:
        if self.local is not None:
            return (self.local / rel).exists()
        return bool(self.fs.exists(self.fs_path(rel)))

    def listdir(self, rel: str) -> list[str]:
        """Entry names directly under ``rel`` ([] when it does not exist); a URL is listed afresh."""
        if self.local is not None:
            folder = self.local / rel
            return sorted(os.listdir(folder)) if folder.is_dir() else []
        try:
            self.fs.invalidate_cache(self.fs_path(rel))  # others' commits since the last look (s3fs caches listings)
            listing = self.fs.ls(self.fs_path(rel), detail=False)
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in listing)
        except FileNotFoundError:
            return []

    def open_binary(self, rel: str) -> IO[bytes]:
        """A binary file object for ``rel`` (h5py can read from it)."""
        local = self.contained(rel)
        if local is not None:
            return open(local, "rb")
        return self.fs.open(self.fs_path(rel), "rb")

    def open_whole(self, rel: str, max_bytes: int) -> IO[bytes]:
        """``rel`` to read whole (an index segment): a local file, or the object fetched in one GET
        into memory (a file object over a URL reads in many ranged requests).

        Raises:
            StoreError: the object is larger than ``max_bytes`` (refused before it is fetched).
            FileNotFoundError: no such file or object.
        """
        local = self.contained(rel)
        if local is not None:
            return open(local, "rb")
        path = self.fs_path(rel)
        size = self.fs.size(path)
        if size is not None and int(size) > max_bytes:
            raise StoreError(f"{self.join(rel)} is {int(size)} bytes, more than an index file may be "
                             f"({max_bytes}); refusing it")
        return io.BytesIO(self.fs.cat_file(path))

    def root_path(self) -> Path | None:
        """The store folder on this machine (unchecked: for listing only), or None for remote stores."""
        if self.local is not None:
            return self.local
        return Path(self.root) if self.is_local_fs else None

    def local_path(self, rel: str) -> Path | None:
        """A local path for ``rel`` when the store is on this machine (``file://`` included),
        checked to stay inside the store (see :meth:`contained`)."""
        return self.contained(rel)


#: JSON metadata files larger than this are refused (a part index of 1M tracks is ~150 MB).
MAX_JSON_BYTES = 512 << 20


def _check_inside(path: Path, root: Path) -> None:
    target = path.resolve()
    if target != root and not target.is_relative_to(root):
        raise StoreError(
            f"{path} points outside its store (to {target}); a store must not link elsewhere, refusing it"
        )
