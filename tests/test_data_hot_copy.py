"""The training loader's memmap hot copy serves exactly what the stores hold."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import ClipDataset, hot_copy

from pipeline.audio_source import AudioSource
from pipeline.stores import open_store
from tests.stage2_fixtures import make_fake_data


def test_hot_copy_items_equal_store_items_and_copy_is_reused(tmp_path: Path) -> None:
    data = make_fake_data(tmp_path / "data", [3.0, 4.5, 2.5])
    cache_root = tmp_path / "cache"
    fast_audio, fast_teacher = hot_copy(data.cache, cache_root), hot_copy(data.store, cache_root)
    assert open_store(fast_teacher).backend == "memmap"
    assert hot_copy(data.store, cache_root) == fast_teacher  # made once, then reused
    kwargs = {"clip_seconds": 2.0, "random_crop": True, "seed": 3}
    slow = ClipDataset(data.clips, AudioSource(data.audio_root, data.sample_rate, data.cache),
                       teacher_store=data.store, **kwargs)
    fast = ClipDataset(data.clips, AudioSource(data.audio_root, data.sample_rate, fast_audio),
                       teacher_store=fast_teacher, **kwargs)
    for epoch in (0, 1):
        slow.set_epoch(epoch)
        fast.set_epoch(epoch)
        for i in range(len(slow)):
            a, b = slow[i], fast[i]
            np.testing.assert_array_equal(a.audio, b.audio)
            np.testing.assert_array_equal(a.teachers[0], b.teachers[0])


def test_a_store_that_gained_tracks_gets_a_new_copy(tmp_path: Path) -> None:
    data = make_fake_data(tmp_path / "data", [2.0, 2.0])
    first = hot_copy(data.store, tmp_path / "cache")
    store = open_store(data.store, mode="a")
    with store.writer() as writer:
        writer.add("extra", np.zeros((3, data.dim), np.float32), audio_sha256="", duration=1.5)
    second = hot_copy(data.store, tmp_path / "cache")
    assert second != first and "extra" in open_store(second)
