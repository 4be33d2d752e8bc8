"""Where a store lives: a local folder, or (read-only) any fsspec URL.

Local stores use plain file I/O; URLs (``file://``, ``s3://``, ``memory://`` ...) go
through fsspec, imported only when a URL is given.
"""
from __future__ import annotations

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

    def read_text(self, rel: str) -> str:
        """Text of ``rel``; FileNotFoundError when absent."""
        if self.local is not None:
            return (self.local / rel).read_text(encoding="utf-8")
        with self.fs.open(self.fs_path(rel), "rb") as handle:
            return handle.read().decode("utf-8")

    def exists(self, rel: str) -> bool:
        if self.local is not None:
            return (self.local / rel).exists()
        return bool(self.fs.exists(self.fs_path(rel)))

    def listdir(self, rel: str) -> list[str]:
        """Entry names directly under ``rel`` ([] when it does not exist)."""
        if self.local is not None:
            folder = self.local / rel
            return sorted(os.listdir(folder)) if folder.is_dir() else []
        try:
            listing = self.fs.ls(self.fs_path(rel), detail=False)
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in listing)
        except FileNotFoundError:
            return []

    def open_binary(self, rel: str) -> IO[bytes]:
        """A binary file object for ``rel`` (h5py can read from it)."""
        if self.local is not None:
            return open(self.local / rel, "rb")
        return self.fs.open(self.fs_path(rel), "rb")

    def local_path(self, rel: str) -> Path | None:
        """A local path for ``rel`` when the store is on this machine (``file://`` included)."""
        if self.local is not None:
            return self.local / rel
        if self.is_local_fs:
            return Path(self.fs_path(rel))
        return None
