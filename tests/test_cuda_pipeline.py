"""CUDA paths of issue 12 (skipped without a GPU; the device run executes them):
pinned, fixed-shape extraction batches and the batch prefetcher."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_prefetch_to_device_moves_every_batch_in_order() -> None:
    from pipeline.data import prefetch_to_device
    from tests.batches import make_batch

    batches = [make_batch(torch.zeros(2, 1), torch.ones(2, 1, dtype=torch.bool), audio=torch.full((2, 3), float(i)),
                          index=torch.full((2,), i)).pin_memory() for i in range(5)]
    out = [(int(b.index[0]), b.audio.device.type, float(b.audio.sum())) for b in prefetch_to_device(batches, "cuda")]
    assert out == [(i, "cuda", 6.0 * i) for i in range(5)]


def test_musicnn_extraction_on_cuda_equals_the_cpu(tmp_path: Path) -> None:
    """Windows in pinned memory, a fixed-shape (padded) batch and the batched GPU network give the
    CPU's frames."""
    from pipeline.audio import read_audio, write_audio
    from pipeline.extraction import extract_tracks
    from pipeline.manifests import Clip
    from pipeline.stores import StoreSpec, create_store, open_store
    from pipeline.teachers import build_teacher

    rng = np.random.default_rng(0)
    clips = []
    for i, seconds in enumerate([7.0, 4.5, 12.0]):
        t = np.arange(int(seconds * 16000)) / 16000
        write_audio(tmp_path / f"c{i}.flac", (0.3 * np.sin(2 * np.pi * 300 * (i + 1) * t)
                                              + 0.02 * rng.standard_normal(len(t))).astype(np.float32), 16000)
        clips.append(Clip(f"c{i}", f"c{i}.flac", seconds, 16000, (0,), (True,)))
    gpu = build_teacher("musicnn", {"hop_seconds": 1.0}).load("cuda")
    store = create_store(tmp_path / "s", StoreSpec.from_teacher(gpu, dtype="float32"))
    with store.writer() as writer:
        outcomes = extract_tracks(gpu, clips, tmp_path, writer, batch_seconds=24.0)
    assert [o.status for o in outcomes].count("done") == 3
    cpu = build_teacher("musicnn", {"hop_seconds": 1.0}).load("cpu")
    for clip in clips:
        expected = cpu.embed(read_audio(tmp_path / clip.audio_path, sample_rate=16000)[None])[0]
        got = open_store(tmp_path / "s").read(clip.id)
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
