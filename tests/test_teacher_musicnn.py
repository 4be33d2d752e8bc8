"""musicnn teacher: configuration, geometry, weights, front end and the Teacher contract (no TF)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipeline.errors import ConfigError, TeacherError, WeightsNotFoundError  # noqa: E402
from pipeline.teachers import build_teacher  # noqa: E402
from pipeline.teachers.musicnn import (  # noqa: E402
    WINDOW_SAMPLES,
    MusicnnConfig,
    MusicnnTeacher,
)
from pipeline.teachers.weights import package_dir  # noqa: E402

SR = 16000
needs_weights = pytest.mark.skipif(
    package_dir("musicnn") is None,
    reason="musicnn weights not installed (pip install --no-deps musicnn==0.1.0)",
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_CACHE: dict[tuple, MusicnnTeacher] = {}


def teacher(**settings) -> MusicnnTeacher:
    """A loaded teacher (cached per configuration: loading reads the checkpoint)."""
    key = tuple(sorted(settings.items()))
    if key not in _CACHE:
        _CACHE[key] = MusicnnTeacher(MusicnnConfig(**settings)).load("cpu")
    return _CACHE[key]


def tone_mix(seconds: float, seed: int = 0) -> np.ndarray:
    """A few decaying harmonic notes plus a little noise (float32, 16 kHz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    audio = 0.01 * rng.standard_normal(len(t))
    for start in np.arange(0.0, seconds, 0.5):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        env = np.where(t >= start, np.exp(-(t - start) * 3.0), 0.0)
        audio += sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6)) * env
    return audio.astype(np.float32)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


# ---- configuration and geometry (no weights needed) ---------------------------------------
def test_config_errors_name_the_bad_value_and_the_valid_ones():
    with pytest.raises(ConfigError, match="'MTT_big'.*MTT_musicnn"):
        MusicnnTeacher(MusicnnConfig(model="MTT_big"))
    with pytest.raises(ConfigError, match="'pool5' is not a layer of MTT_musicnn"):
        MusicnnTeacher(MusicnnConfig(layer="pool5"))
    with pytest.raises(ConfigError, match="'timbral' is not a layer of MTT_vgg"):
        MusicnnTeacher(MusicnnConfig(model="MTT_vgg", layer="timbral"))
    with pytest.raises(ConfigError, match="hop_seconds must be > 0"):
        MusicnnTeacher(MusicnnConfig(hop_seconds=0.0))
    with pytest.raises(ConfigError, match="frame-level.*2.992"):
        MusicnnTeacher(MusicnnConfig(layer="cnn1", hop_seconds=1.0))


def test_registered_and_built_from_params_settings():
    built = build_teacher("musicnn", {"model": "MSD_musicnn", "layer": "max_pool", "hop_seconds": 3})
    assert isinstance(built, MusicnnTeacher)
    assert (built.config.model, built.embedding_dim, built.hop_frames) == ("MSD_musicnn", 753, 188)
    with pytest.raises(ConfigError, match="unknown key"):
        build_teacher("musicnn", {"modle": "MTT_vgg"})


def test_patch_geometry_matches_upstream_mel_frames():
    t = MusicnnTeacher(MusicnnConfig(hop_seconds=1.0))
    grid = t.grid
    assert (grid.sample_rate, grid.window, grid.first_start, grid.tail) == (SR, 186 * 256 + 512, -256, "drop")
    assert grid.hop == 62 * 256  # 1 s rounds to 62 mel frames, like upstream's time_to_frames
    assert t.frames_per_window == 1
    # window k = mel frames 62k .. 62k+186 (centered at 0.016 j s): its center is mel frame 62k + 93
    assert t.frame0_center_seconds == pytest.approx(93 * 256 / SR)
    assert t.hop_seconds == pytest.approx(62 * 256 / SR)
    np.testing.assert_allclose(t.frame_times(3), (93 + 62 * np.arange(3)) * 256 / SR)
    # upstream: patches start at mel frames 0, 62, ... while 187 of its 1 + n // 256 frames fit;
    # it may keep one more patch than the grid, reaching up to 256 samples into its end padding
    for seconds, expected in ((3.0, 1), (5.0, 3), (12.3, 10)):
        n = int(seconds * SR)
        upstream = len(range(0, 1 + n // 256 - 187 + 1, 62))
        assert t.num_frames(n) == expected
        assert upstream - t.num_frames(n) in (0, 1)
    assert t.num_frames(100) == 1  # shorter than a patch: one zero-padded window


def test_frame_level_geometry():
    t = MusicnnTeacher(MusicnnConfig(layer="timbral", hop_seconds=2.992))
    assert (t.frames_per_window, t.embedding_dim, t.grid.hop) == (187, 408, 187 * 256)
    assert t.frame0_center_seconds == 0.0
    assert t.hop_seconds == pytest.approx(0.016)
    assert t.num_frames(10 * SR) == 3 * 187
    vgg = MusicnnTeacher(MusicnnConfig(model="MTT_vgg"))
    assert (vgg.layer, vgg.embedding_dim) == ("pool5", 256)  # 'penultimate' of a VGG is pool5


def test_missing_weights_raise_one_clear_error(tmp_path: Path):
    t = MusicnnTeacher(MusicnnConfig(weights=str(tmp_path / "nowhere")))
    assert not t.weights_available()
    hint = r"pip install --no-deps musicnn==0\.1\.0.*teachers\.musicnn\.weights"
    with pytest.raises(WeightsNotFoundError, match=hint):
        t.load()
    with pytest.raises(TeacherError, match="not loaded"):
        t.embed_windows(np.zeros((1, WINDOW_SAMPLES), np.float32))


# ---- weights -------------------------------------------------------------------------------
@needs_weights
def test_weight_files_fingerprint_and_checkpoint_copy(tmp_path: Path):
    t = MusicnnTeacher(MusicnnConfig())
    files = t.weight_files()
    assert [f.name for f in files] == [".index", ".data-00000-of-00001"]
    assert t.weights_available()
    assert len(t.weights_sha256) == 64
    # the same checkpoint copied elsewhere (weights: folder) gives the same fingerprint and outputs
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for f in files:
        shutil.copy(f, folder / f.name)
    copy = MusicnnTeacher(MusicnnConfig(weights=str(folder))).load()
    assert copy.weights_sha256 == t.weights_sha256
    audio = tone_mix(4.0)
    np.testing.assert_array_equal(copy.embed(audio), teacher().embed(audio))
    assert copy.describe()["weights_sha256"] == t.weights_sha256
    assert "weights" not in copy.describe()["config"]


@needs_weights
def test_checkpoint_of_another_model_is_refused():
    folder = package_dir("musicnn") / "MTT_musicnn"
    with pytest.raises(TeacherError, match=r"does not hold a MTT_vgg model.*1CNN/kernel"):
        MusicnnTeacher(MusicnnConfig(model="MTT_vgg", weights=str(folder))).load()


# ---- front end -----------------------------------------------------------------------------
@needs_weights
def test_log_mel_matches_librosa_center_true_frames():
    librosa = pytest.importorskip("librosa")
    audio = tone_mix(5.0, seed=3)
    t = teacher()
    mel = librosa.feature.melspectrogram(y=audio, sr=SR, n_fft=512, hop_length=256, n_mels=96).T
    reference = np.log10(10000 * mel + 1)
    windows = t.grid.cut(audio, 0, t.grid.num_windows(len(audio)))
    ours = t.log_mel(windows)
    assert ours.shape == (len(windows), 187, 96)
    for k, patch in enumerate(ours):
        expected = reference[62 * k : 62 * k + 187]
        assert rel(patch, expected) < 1e-4


# ---- the exact reduction ---------------------------------------------------------------------
@needs_weights
def test_frequency_first_reduction_equals_the_unreduced_block():
    t = teacher()
    net = t._net
    x = net.input_bn(torch.from_numpy(t.log_mel(t.grid.cut(tone_mix(3.2), 0, 1))).unsqueeze(1))
    for block in list(net.timbral) + list(net.temporal):
        raw_weight = block.weight * block.bn.sign.view(-1, 1, 1, 1)  # undo the sign flip
        padded = torch.nn.functional.pad(x, block.padding)
        full = torch.nn.functional.conv2d(padded, raw_weight, block.bias)
        naive = block.bn(torch.relu(full)).amax(dim=3)  # upstream: conv+bias, ReLU, BN, max over freq
        fast = block.reduced(x, lambda y: y.amax(dim=3))
        assert (block.bn.sign < 0).any()  # the min branch is exercised
        torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-5)


# ---- the Teacher contract --------------------------------------------------------------------
@needs_weights
@pytest.mark.parametrize(
    "settings, dim, per_window",
    [
        ({}, 200, 1),
        ({"layer": "max_pool"}, 753, 1),
        ({"layer": "taggram"}, 50, 1),
        ({"layer": "temporal", "hop_seconds": 2.992}, 153, 187),
        ({"model": "MTT_vgg", "layer": "logits"}, 50, 1),
    ],
)
def test_shapes_and_frame_count(settings, dim, per_window):
    t = teacher(**settings)
    for seconds in (1.0, 3.0, 7.5):
        audio = tone_mix(seconds)
        out = t.embed(audio)
        assert out.dtype == np.float32 and np.isfinite(out).all()
        assert out.shape == (1, t.num_frames(len(audio)), dim)
        assert out.shape[1] % per_window == 0
        assert len(t.frame_times(out.shape[1])) == out.shape[1]


@needs_weights
def test_taggram_is_sigmoid_of_logits_and_penultimate_feeds_them():
    audio = tone_mix(5.0)
    logits = teacher(layer="logits").embed(audio)
    taggram = teacher(layer="taggram").embed(audio)
    np.testing.assert_allclose(taggram, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    net = teacher()._net
    penultimate = torch.from_numpy(teacher().embed(audio)[0])
    manual = torch.nn.functional.linear(penultimate, net.out_weight, net.out_bias).numpy()
    np.testing.assert_allclose(manual, logits[0], rtol=1e-4, atol=1e-4)


@needs_weights
def test_batch_equals_single_clips_and_silence_is_finite():
    t = teacher()
    clips = np.stack([tone_mix(4.0, seed=1), tone_mix(4.0, seed=2), np.zeros(4 * SR, np.float32)])
    batch = t.embed(clips)
    for row, clip in zip(batch, clips):
        np.testing.assert_allclose(row, t.embed(clip)[0], rtol=1e-5, atol=1e-5)
    assert np.isfinite(batch).all()
    assert not np.allclose(batch[0], batch[1])  # different audio, different embeddings
    silent = batch[2]
    assert np.allclose(silent, silent[0])  # silence looks the same everywhere


@needs_weights
def test_short_input_is_one_zero_padded_window():
    t = teacher()
    short = tone_mix(0.5)
    out = t.embed(short)
    assert out.shape == (1, 1, 200)
    padded = np.zeros(3 * SR, np.float32)
    padded[: len(short)] = short
    np.testing.assert_allclose(out, t.embed(padded)[:, :1], rtol=1e-5, atol=1e-5)
    assert t.embed_windows(np.zeros((0, WINDOW_SAMPLES), np.float32)).shape == (0, 1, 200)
    with pytest.raises(TeacherError, match="48128"):
        t.embed_windows(np.zeros((2, 1000), np.float32))


@needs_weights
@pytest.mark.parametrize("settings", [{}, {"layer": "cnn3", "hop_seconds": 2.992}, {"model": "MTT_vgg"}])
def test_embed_equals_windows_cut_from_blocks(settings):
    """What a long-file reader does: cut windows from blocks of the track, embed them in batches."""
    t = teacher(**settings)
    audio = tone_mix(13.0, seed=5)
    grid = t.grid
    whole = t.embed(audio)[0]
    n = grid.num_windows(len(audio))
    parts = []
    for start in range(0, n, 3):
        count = min(3, n - start)
        lo, hi = grid.block_span(start, count, len(audio))
        windows = grid.cut(audio[lo:hi], start, count, offset=lo)
        parts.append(t.embed_windows(windows).reshape(-1, t.embedding_dim))
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-5, atol=1e-5 * np.abs(whole).max())


@needs_weights
def test_shared_overlap_equals_windows_one_by_one():
    t = teacher()
    audio = tone_mix(9.0, seed=7)
    windows = t.grid.cut(audio, 0, t.grid.num_windows(len(audio)))
    assert t.runs(windows) == [(0, 7)]
    shared = t.embed_windows(windows)
    alone = np.concatenate([t.embed_windows(w[None]) for w in windows])
    np.testing.assert_allclose(shared, alone, rtol=1e-5, atol=1e-5 * np.abs(alone).max())
    shuffled = windows[[0, 2, 1, 3]]
    assert t.runs(shuffled) == [(0, 1), (1, 2), (2, 3), (3, 4)]


@needs_weights
def test_float16_cast_is_optional_and_finite_on_loud_input():
    loud = np.clip(tone_mix(4.0) * 8, -1, 1)  # mel power far above float16's overflow at 6.55
    plain = teacher(layer="logits").embed(loud)
    cast = teacher(layer="logits", float16_cast=True).embed(loud)
    assert np.isfinite(cast).all()
    assert 0 < rel(cast, plain) < 0.05


@needs_weights
@pytest.mark.parametrize("model", ["MSD_musicnn", "MSD_vgg"])
def test_msd_models_load_and_run(model):
    t = teacher(model=model, layer="taggram")
    assert t.tags[0] == "rock"
    out = t.embed(tone_mix(3.5))
    assert out.shape == (1, 1, 50) and ((out > 0) & (out < 1)).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@needs_weights
def test_cuda_matches_cpu():
    audio = tone_mix(6.0)
    gpu = MusicnnTeacher(MusicnnConfig()).load("cuda")
    np.testing.assert_allclose(gpu.embed(audio), teacher().embed(audio), rtol=1e-3, atol=1e-3)
