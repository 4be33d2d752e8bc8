"""Stage-two test data: fast fake stores and one tiny real pipeline shared by the whole session.

Import what a module needs (``from tests.stage2_fixtures import tiny_pipeline  # noqa: F401``).

- :func:`make_fake_data` writes FLAC clips, a teacher store filled with given or random
  frames and, optionally, the int16 audio cache quantised exactly as extraction does. It
  takes well under a second and is used by the loader and training tests.
- :func:`tiny_pipeline` (session scope) runs the real thing once on a rendered demo set:
  ``prepare demo`` -> ``extract --teacher musicnn`` (in-process) -> ``probe`` -> ``distill``
  of the three variants (one epoch, through the CLI) -> ``evaluate``. A session fixture
  defined in this module and imported into several test modules gets one ``FixtureDef`` per
  module, so the result is also cached here: the pipeline is built once per session.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pytest
import yaml

from pipeline.config import PAPER_VARIANTS as VARIANTS  # the variants the tiny pipeline trains
from pipeline.manifests import Clip

ROOT = Path(__file__).resolve().parents[1]


# ---- fake stores -------------------------------------------------------------------------
@dataclass
class FakeData:
    """What :func:`make_fake_data` wrote.

    Attributes:
        audio_root: folder of the FLAC files (the clips' ``audio_path`` is relative to it).
        store: the teacher store's folder.
        cache: the int16 audio cache's folder, or None.
        clips: one :class:`Clip` per file.
        audio: clip id -> float32 waveform as decoded from its FLAC file.
        frames: clip id -> the float32 teacher frames written to the store.
        sample_rate, hop, frame0, window, dim: the geometry used.
    """

    audio_root: Path
    store: Path
    cache: Path | None
    clips: list[Clip]
    audio: dict[str, np.ndarray]
    frames: dict[str, np.ndarray]
    sample_rate: int
    hop: float
    frame0: float
    window: float
    dim: int


def frames_in(duration: float, hop: float, frame0: float) -> int:
    """Frames whose centers ``frame0 + i * hop`` fall inside ``[0, duration)``."""
    return max(1, math.ceil((duration - frame0) / hop - 1e-9))


def make_fake_data(
    root: Path,
    durations: Sequence[float],
    *,
    n_classes: int = 4,
    sample_rate: int = 8000,
    dim: int = 6,
    hop: float = 0.5,
    frame0: float = 0.25,
    window: float = 0.5,
    cache: bool = True,
    backend: str = "zarr",
    seed: int = 0,
    labels: np.ndarray | None = None,
    audio_fn: Callable[[int, np.ndarray, int, np.random.Generator], np.ndarray] | None = None,
    teacher_fn: Callable[[int, np.ndarray, int, np.random.Generator], np.ndarray] | None = None,
    id_prefix: str = "clip",
) -> FakeData:
    """Write clips, a teacher store and (optionally) an int16 audio cache under ``root``.

    Args:
        root: empty folder.
        durations: seconds per clip.
        labels: (n, C) 0/1 labels; random multi-label with ~20 % unknown when None.
        audio_fn: ``(index, labels_row, n_samples, rng) -> float32 (n_samples,)`` in [-1, 1];
            uniform noise (every window unique) when None.
        teacher_fn: ``(index, labels_row, n_frames, rng) -> (n_frames, dim)``; N(0, 1) when None.

    Returns:
        :class:`FakeData`.
    """
    from pipeline.audio import read_audio, write_audio
    from pipeline.extraction import _audio_to_int16  # the quantisation extraction uses
    from pipeline.stores import StoreSpec, create_store

    rng = np.random.default_rng(seed)
    n = len(durations)
    if labels is None:
        labels = (rng.random((n, n_classes)) < 0.4).astype(np.int64)
        labels[np.arange(n), rng.integers(0, n_classes, n)] = 1
    known = rng.random(labels.shape) > 0.2
    audio_root = root / "audio"
    store_dir = root / "store"
    spec = StoreSpec(
        kind="embedding", teacher="fake", config={"seed": seed}, weights_sha256="ab" * 32,
        sample_rate=sample_rate, hop_seconds=hop, window_seconds=window, frame0_center_seconds=frame0,
        clip_level=False, dim=dim, dtype="float32",
    )
    store = create_store(store_dir, spec, backend=backend)
    cache_dir = store_dir / "audio" if cache else None
    cache_store = None
    if cache_dir is not None:
        cache_store = create_store(cache_dir, StoreSpec.for_audio(sample_rate), backend=backend)
    clips, audio, frames = [], {}, {}
    with store.writer(part_tracks=7) as writer:
        for i, seconds in enumerate(durations):
            cid = f"{id_prefix}-{i:03d}"
            n_samples = int(round(seconds * sample_rate))
            wave = (audio_fn(i, labels[i], n_samples, rng) if audio_fn
                    else rng.uniform(-0.6, 0.6, n_samples).astype(np.float32))
            path = audio_root / f"{cid}.flac"
            write_audio(path, wave, sample_rate)
            audio[cid] = read_audio(path)
            count = frames_in(seconds, hop, frame0)
            emb = (teacher_fn(i, labels[i], count, rng) if teacher_fn
                   else rng.standard_normal((count, dim))).astype(np.float32)
            frames[cid] = emb
            writer.add(cid, emb, audio_sha256=f"sha-{cid}", duration=float(seconds))
            clips.append(Clip(cid, f"{cid}.flac", float(seconds), sample_rate,
                              tuple(int(v) for v in labels[i]), tuple(bool(v) for v in known[i])))
    if cache_store is not None:
        with cache_store.writer(part_tracks=5) as writer:
            for clip in clips:
                writer.add(clip.id, _audio_to_int16([audio[clip.id]], sample_rate, sample_rate),
                           audio_sha256=f"sha-{clip.id}", duration=clip.duration)
    return FakeData(audio_root, store_dir, cache_dir, clips, audio, frames, sample_rate, hop, frame0, window,
                    dim)


def find_offset(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Sample offset at which ``needle`` starts inside ``haystack`` (unique noise), or -1."""
    probe = needle[:64]
    for start in np.flatnonzero(haystack[: len(haystack) - len(probe) + 1] == probe[0]):
        if np.array_equal(haystack[start : start + len(probe)], probe):
            return int(start)
    return -1


# ---- the tiny real pipeline ---------------------------------------------------------------
@dataclass
class TinyPipeline:
    """The session's real run: paths and the CLI outputs of each step."""

    root: Path
    params: Path
    runs: Path
    store: Path
    manifests: Path
    audio_root: Path
    outputs: dict[str, str] = field(default_factory=dict)

    def run_dir(self, variant: str) -> Path:
        return self.runs / variant


_BUILT: dict[str, Any] = {}


def invoke(params: Path | None, *args: str):  # noqa: ANN201
    """Run ``pipeline [--params P] ARGS`` in-process; returns click's Result (stdout/stderr apart)."""
    from click.testing import CliRunner

    from pipeline.cli import cli

    argv = (["--params", str(params)] if params else []) + [str(a) for a in args]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def _build(root: Path) -> TinyPipeline:
    import torch

    import stages.extract
    import stages.prepare
    from pipeline.config import load_params

    torch.set_num_threads(1)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(audio_root=str(root / "data" / "demo"), manifests=str(root / "manifests"))
    params["demo"].update(n_train=16, n_valid=8, n_test=8, clip_seconds=4.0)
    params["extract"].update(workers=0, store_root=str(root / "stores"), device="cpu")
    params["probe"].update(steps=60, runs_root=str(root / "runs"))
    params["distill"].update(epochs=1, batch_size=8, runs_root=str(root / "runs"), device="cpu")
    params["report"].update(out=str(root / "reports"))
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    loaded = load_params(path)
    stages.prepare.run(loaded, builder="demo")
    report = stages.extract.run(loaded, teacher="musicnn", progress=False)
    assert report.ok and report.done == 32, report.to_json()
    tiny = TinyPipeline(root, path, root / "runs", root / "stores" / "musicnn", root / "manifests",
                        root / "data" / "demo")
    steps = [("probe", ["probe", "--teacher", "musicnn"])]
    for variant in VARIANTS:
        steps.append((f"distill-{variant}", ["distill", "--variant", variant, "--run-dir",
                                             str(tiny.run_dir(variant)), "--no-progress"]))
        steps.append((f"evaluate-{variant}", ["evaluate", str(tiny.run_dir(variant))]))
    for name, args in steps:
        result = invoke(path, *args)
        assert result.exit_code == 0, f"pipeline {' '.join(args)} failed:\n{result.output}"
        tiny.outputs[name] = result.output
    return tiny


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> TinyPipeline:
    """The real demo pipeline on 16/8/8 four-second clips, built once per session (~20 s)."""
    if "tiny" not in _BUILT:
        _BUILT["tiny"] = _build(tmp_path_factory.mktemp("tiny-pipeline"))
    return _BUILT["tiny"]


# ---- training helpers ----------------------------------------------------------------------
def distill_config(**changes: Any):  # noqa: ANN201
    """A small CPU :class:`~pipeline.config.DistillConfig` for trainer tests."""
    from pipeline.config import DistillConfig

    base = dict(epochs=2, batch_size=8, lr=3e-3, device="cpu", amp=False, num_workers=0, threads=1,
                patience=50, grad_clip=1.0, schedule="onecycle", mixup_alpha=0.0)
    base.update(changes)
    return replace(DistillConfig(), **base)


def small_student(n_classes: int, sample_rate: int, seed: int = 0, dropout: float = 0.0):  # noqa: ANN201
    """Mobile-FCN with 32 mel bands (4x faster than the default, same structure), no dropout by default.

    Dropout 0.5 (the paper's) makes a dozen steps too noisy to show the mechanics the tests check.
    """
    import torch

    from pipeline.students import build_student

    torch.manual_seed(seed)
    settings = {"n_mels": 32, "dropout": dropout}
    return build_student("mobile_fcn", settings, n_classes=n_classes, sample_rate=sample_rate)
