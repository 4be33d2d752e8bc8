"""A clip's audio as stage two reads it: from the int16 audio cache beside a teacher store, or the file.

Extraction renders augmented views from the same samples (:mod:`pipeline.views`), so both stages
read audio through :class:`AudioSource`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.audio import read_audio
from pipeline.manifests import Clip
from pipeline.stores import EmbeddingStore, open_store
from pipeline.stores.location import Location, is_url


class AudioSource:
    """Reads ``[start, start + n)`` samples of a clip at ``sample_rate`` from the cache or the file."""

    def __init__(self, audio_root: Path | str, sample_rate: int, cache_path: Path | str | None = None) -> None:
        self.audio_root = Path(audio_root)
        self.sample_rate = sample_rate
        self.cache_path = str(cache_path) if cache_path else None
        self._cache: EmbeddingStore | None = None

    def _store(self) -> EmbeddingStore | None:
        if self.cache_path and self._cache is None:
            self._cache = open_store(self.cache_path)
        return self._cache

    def read(self, clip: Clip, start: int, n: int) -> np.ndarray:
        """float32 (n,) samples; zero-padded past the end of the clip."""
        out = np.zeros(n, dtype=np.float32)
        cache = self._store()
        if cache is not None and clip.id in cache:
            n_samples = cache.entry(clip.id).n_frames  # the audio cache holds one row per sample
            stop = min(start + n, n_samples)
            if stop > start:
                out[: stop - start] = cache.read(clip.id, start, stop)[:, 0].astype(np.float32) / 32768.0
            return out
        audio = read_audio(
            clip.resolve(self.audio_root),
            sample_rate=self.sample_rate,
            start=start / self.sample_rate,
            duration=n / self.sample_rate,
        )
        out[: min(n, len(audio))] = audio[:n]
        return out

    def read_clip(self, clip: Clip) -> np.ndarray:
        """The whole clip, float32 ``(samples,)``: the base audio of its views (:mod:`pipeline.views`).

        From the cache: every cached sample, read as :meth:`read` reads them; without one, the
        whole file at :attr:`sample_rate`.
        """
        cache = self._store()
        if cache is not None and clip.id in cache:
            return self.read(clip, 0, cache.entry(clip.id).n_frames)
        return np.asarray(read_audio(clip.resolve(self.audio_root), sample_rate=self.sample_rate), dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:  # never pickle an open store into a worker
        state = dict(self.__dict__)
        state["_cache"] = None
        return state


def usable_audio_cache(teacher_store: Path | str | None, sample_rate: int) -> Path | str | None:
    """The audio cache next to a teacher store when it exists at ``sample_rate``, else None."""
    if teacher_store is None:
        return None
    path: Path | str = (
        f"{str(teacher_store).rstrip('/')}/audio" if is_url(str(teacher_store)) else Path(teacher_store) / "audio"
    )
    if not Location(path).exists("teacher.json"):
        return None
    return path if open_store(path).spec.sample_rate == sample_rate else None
