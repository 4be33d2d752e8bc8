"""Stage-two loader: crops and their teacher frames, audio sources, workers, mixup."""
from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import ClipDataset, mixup

from pipeline.audio_source import AudioSource, usable_audio_cache
from pipeline.errors import StoreError
from pipeline.stores import open_store
from tests import stage2_fixtures
from tests.batches import frames, make_batch
from tests.stage2_fixtures import TinyPipeline, find_offset, make_fake_data

tiny_pipeline = stage2_fixtures.tiny_pipeline  # the session's real pipeline (built once)

INT16_STEP = 1.0 / 32768


def _dataset(data, **kw) -> ClipDataset:  # noqa: ANN001
    audio = AudioSource(data.audio_root, data.sample_rate, data.cache)
    return ClipDataset(data.clips, audio, teacher_store=data.store, **kw)


def _crop_start(data, item) -> int:  # noqa: ANN001
    """The crop's first sample, found by locating the item's audio inside the clip (unique noise)."""
    clip = data.clips[int(item.index)]
    whole = AudioSource(data.audio_root, data.sample_rate, data.cache).read(
        clip, 0, int(round(clip.duration * data.sample_rate)))
    return find_offset(whole, item.audio)


def test_items_hold_the_store_frames_centered_in_the_crop(tmp_path: Path) -> None:
    data = make_fake_data(tmp_path, [7.0, 9.5, 12.0, 8.0], hop=0.5, frame0=0.25)
    store = open_store(data.store)
    ds = _dataset(data, clip_seconds=3.0, random_crop=True, seed=3)
    assert ds.frames[0] == 6  # centers 0.25 .. 2.75 s of a 3 s crop
    rel = ds.teacher_times()
    starts = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            clip = data.clips[i]
            start = _crop_start(data, item)
            assert start >= 0, "the item's audio is not a window of its clip"
            starts.append(start)
            t0 = start / data.sample_rate
            served, times = store.read_window(clip.id, t0, t0 + 3.0)
            assert item.teachers[0].shape == (6, data.dim) == served.shape
            np.testing.assert_array_equal(item.teachers[0], served)
            np.testing.assert_allclose(times - t0, rel, atol=1e-9)
            idx = (times - data.frame0) / data.hop
            stored_times = store.frame_times(clip.id)[np.round(idx).astype(int)]
            np.testing.assert_allclose(stored_times - t0, rel, atol=1e-9)
            assert item.audio.shape == (int(3.0 * data.sample_rate),)
    assert len(set(starts)) > 4  # the crops do move


def test_random_crops_are_grid_aligned_differ_by_epoch_and_repeat_per_seed(tmp_path: Path) -> None:
    data = make_fake_data(tmp_path, [12.0] * 6, hop=0.5, frame0=0.25)
    hop_samples = int(data.hop * data.sample_rate)

    def starts(seed: int, epoch: int) -> list[int]:
        ds = _dataset(data, clip_seconds=3.0, random_crop=True, seed=seed)
        ds.set_epoch(epoch)
        return [_crop_start(data, ds[i]) for i in range(len(ds))]

    first, again, second, other_seed = starts(0, 0), starts(0, 0), starts(0, 1), starts(1, 0)
    assert all(s >= 0 and s % hop_samples == 0 for s in first + second)  # on the teacher's grid
    assert all(s + 3 * data.sample_rate <= 12 * data.sample_rate for s in first + second)
    assert first == again  # same (seed, epoch): same crops
    assert first != second and first != other_seed
    assert sum(a != b for a, b in zip(first, second)) >= 3


def test_evaluation_items_are_whole_clips_from_the_start(tmp_path: Path) -> None:
    data = make_fake_data(tmp_path, [6.0, 9.0, 12.0], hop=0.5, frame0=0.25)
    ds = _dataset(data, clip_seconds=9.0, random_crop=False)
    assert ds.frames[0] == 12  # the shortest clip has 12 frames; 18 would fit in 9 s
    for i, clip in enumerate(data.clips):
        item = ds[i]
        wave = data.audio[clip.id]
        n = min(len(wave), 9 * data.sample_rate)
        assert item.audio.shape == (9 * data.sample_rate,)
        np.testing.assert_allclose(item.audio[:n], wave[:n], atol=INT16_STEP + 1e-7)
        assert not item.audio[n:].any()  # zero-padded past the end of the 6 s clip
        np.testing.assert_array_equal(item.teachers[0], data.frames[clip.id][:12])
    batch = ds.collate([ds[i] for i in range(3)])
    assert tuple(batch.audio.shape) == (3, 9 * data.sample_rate)
    assert tuple(batch.teachers[0].frames.shape) == (3, 12, data.dim)
    assert tuple(batch.labels.shape) == (3, 4) and batch.known.dtype.is_floating_point is False


def test_teacher_norm_z_scores_the_frames(tmp_path: Path) -> None:
    from pipeline.data import frame_statistics

    data = make_fake_data(tmp_path, [5.0, 7.0, 6.0], hop=0.5, frame0=0.25)
    mean, std = frame_statistics(data.store, data.clips)
    every = np.concatenate([data.frames[c.id] for c in data.clips])
    np.testing.assert_allclose(mean, every.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, every.std(0), rtol=1e-5)
    ds = _dataset(data, clip_seconds=5.0, teacher_norm=(mean, std))
    np.testing.assert_allclose(ds[1].teachers[0], (data.frames[data.clips[1].id][:10] - mean) / std, rtol=1e-5)


def test_cache_audio_equals_file_audio_within_one_int16_step(tmp_path: Path) -> None:
    data = make_fake_data(tmp_path, [3.0, 4.5], sample_rate=16000)
    cached = AudioSource(data.audio_root, 16000, data.cache)
    files = AudioSource(data.audio_root, 16000, None)
    for clip in data.clips:
        for start, n in [(0, 16000), (12345, 20000), (int(clip.duration * 16000) - 500, 4000)]:
            a, b = cached.read(clip, start, n), files.read(clip, start, n)
            assert a.dtype == np.float32 and a.shape == b.shape == (n,)
            assert np.abs(a - b).max() <= INT16_STEP + 1e-7
            assert np.abs(a).max() > 0.1
        tail = cached.read(clip, int(clip.duration * 16000) - 500, 4000)
        assert tail[:500].any() and not tail[500:].any()  # zero-padded past the end
    assert cached._cache is not None  # the cache was really used


def test_real_extraction_cache_matches_the_rendered_files(tiny_pipeline: TinyPipeline) -> None:
    from pipeline.manifests import load_split

    clips = load_split(tiny_pipeline.manifests, "valid")[:3]
    cache = usable_audio_cache(tiny_pipeline.store, 16000)
    assert cache == tiny_pipeline.store / "audio"
    cached = AudioSource(tiny_pipeline.audio_root, 16000, cache)
    files = AudioSource(tiny_pipeline.audio_root, 16000, None)
    for clip in clips:
        a, b = cached.read(clip, 8000, 32000), files.read(clip, 8000, 32000)
        assert np.abs(a).max() > 0.01
        assert np.abs(a - b).max() <= INT16_STEP + 1e-7


def test_file_fallback_without_cache_or_for_uncached_clips(tmp_path: Path) -> None:
    data = make_fake_data(tmp_path / "a", [4.0, 4.0], cache=False)
    assert usable_audio_cache(data.store, data.sample_rate) is None
    ds = _dataset(data, clip_seconds=2.0, random_crop=False)
    expected = data.audio[data.clips[1].id][: 2 * data.sample_rate]
    np.testing.assert_allclose(ds[1].audio, expected, atol=1e-7)
    # a cache at another rate is not used; a cache lacking a clip falls back to its file
    other = make_fake_data(tmp_path / "b", [4.0], sample_rate=8000, id_prefix="other")
    assert usable_audio_cache(other.store, 16000) is None
    source = AudioSource(data.audio_root, data.sample_rate, other.cache)
    got = source.read(data.clips[0], 100, 1000)
    np.testing.assert_allclose(got, data.audio[data.clips[0].id][100:1100], atol=1e-7)


def test_clip_missing_from_the_store_is_a_store_error_naming_it(tmp_path: Path) -> None:
    from pipeline.data import pooled_embeddings

    data = make_fake_data(tmp_path, [4.0, 4.0])
    ghost = data.clips[0].__class__("ghost-clip", "ghost.flac", 4.0, data.sample_rate,
                                    data.clips[0].labels, data.clips[0].known)
    audio = AudioSource(data.audio_root, data.sample_rate, data.cache)
    with pytest.raises(StoreError, match=r"'ghost-clip'.*pipeline extract"):
        ClipDataset([*data.clips, ghost], audio, clip_seconds=2.0, teacher_store=data.store)
    with pytest.raises(StoreError, match="'ghost-clip'"):
        pooled_embeddings(data.store, [ghost])


def test_dataset_pickles_without_open_handles_and_feeds_two_workers(tmp_path: Path) -> None:
    import torch
    from torch.utils.data import DataLoader

    data = make_fake_data(tmp_path, [5.0] * 8, hop=0.5, frame0=0.25)
    ds = _dataset(data, clip_seconds=3.0, random_crop=True, seed=1)
    ds.set_epoch(2)
    expected = [ds[i] for i in range(len(ds))]  # opens the store and the cache here
    assert ds._stores and ds.audio._cache is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert not clone._stores and clone.audio._cache is None
    assert b"zarr" not in pickle.dumps(ds)  # no array handle travels
    loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=2, collate_fn=ds.collate)
    batches = list(loader)
    assert len(batches) == 2
    got_audio = torch.cat([b.audio for b in batches]).numpy()
    got_teacher = torch.cat([b.teachers[0].frames for b in batches]).numpy()
    np.testing.assert_array_equal(got_audio, np.stack([e.audio for e in expected]))
    np.testing.assert_array_equal(got_teacher, np.stack([e.teachers[0] for e in expected]))


def test_mixup_mixes_audio_teacher_and_labels_with_one_lambda() -> None:
    import torch

    rng = np.random.default_rng(0)
    n = 12
    audio = torch.from_numpy(rng.standard_normal((n, 400)).astype(np.float32))
    teacher = torch.from_numpy(rng.standard_normal((n, 3, 5)).astype(np.float32))
    labels = torch.from_numpy((rng.random((n, 6)) < 0.5).astype(np.float32))
    known = torch.from_numpy(rng.random((n, 6)) < 0.6)
    batch = make_batch(labels, known, [frames(teacher, 0.5 + np.arange(3), 1.0)], audio=audio)
    torch.manual_seed(0)
    out = mixup(batch, 1.0, torch.Generator().manual_seed(1))
    a = batch.audio.double().numpy()
    mixed = 0
    for i in range(n):
        # recover (partner, lam) from the audio alone
        fits = []
        for j in range(n):
            d = a[i] - a[j]
            lam = 1.0 if j == i else float(np.dot(out.audio[i].double().numpy() - a[j], d) / np.dot(d, d))
            residual = lam * a[i] + (1 - lam) * a[j] - out.audio[i].double().numpy()
            fits.append((np.abs(residual).max(), j, lam))
        err, j, lam = min(fits)
        assert err < 1e-5
        assert 0.5 - 1e-6 <= lam <= 1.0 + 1e-6
        if lam > 0.999:  # (almost) unmixed: the partner cannot be told from the audio
            assert torch.equal(out.known[i] & batch.known[i], batch.known[i])
            continue
        mixed += 1
        teacher = lam * batch.teachers[0].frames[i] + (1 - lam) * batch.teachers[0].frames[j]
        np.testing.assert_allclose(out.teachers[0].frames[i], teacher, atol=1e-5)
        yi = batch.labels[i] * batch.known[i]
        yj = batch.labels[j] * batch.known[j]
        np.testing.assert_allclose(out.labels[i], lam * yi + (1 - lam) * yj, atol=1e-5)
        assert torch.equal(out.known[i], batch.known[i] | batch.known[j])
    assert mixed >= n // 2
    assert mixup(batch, 0.0, torch.Generator()) is batch  # alpha 0 disables


def test_prefetch_to_device_yields_every_batch_transformed_in_order() -> None:
    """On CPU the prefetcher passes batches through, applying the host transform (mixup's slot)."""
    import torch

    from pipeline.data import prefetch_to_device

    batches = [make_batch(torch.zeros(2, 1), torch.ones(2, 1, dtype=torch.bool), audio=torch.full((2, 3), float(i)),
                          index=torch.full((2,), i)) for i in range(4)]
    out = list(prefetch_to_device(iter(batches), "cpu", transform=lambda b: dataclasses.replace(b, audio=b.audio + 1)))
    assert [int(b.index[0]) for b in out] == [0, 1, 2, 3]
    assert all(torch.equal(b.audio, torch.full((2, 3), i + 1.0)) for i, b in enumerate(out))
    assert list(prefetch_to_device(iter([]), "cpu")) == []
