"""VGGish teacher: against torchvggish (original package code) and a TF-slim graph, geometry, contract."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from pipeline.errors import TeacherError, WeightsNotFoundError
from pipeline.teachers import build_teacher
from pipeline.teachers.vggish import VGGishConfig, VGGishTeacher
from pipeline.teachers.vggish_net import VGGishFrontend, VGGishNet, mel_matrix
from pipeline.teachers.weights import package_dir
from tests.fixtures_tf_teachers import real_audio, reference_dir, reference_inputs

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def torchvggish_module(name: str) -> ModuleType:
    """A module of the installed torchvggish package, loaded by path.

    The package's ``__init__`` imports ``resampy`` (and numba) for resampling, which these
    tests do not need; ``torchvggish.py``, ``mel_features.py`` and ``vggish_params.py`` only
    need torch and numpy. Skips when torchvggish is not installed.
    """
    folder = package_dir("torchvggish")
    if folder is None:
        pytest.skip("torchvggish is not installed (pip install --no-deps torchvggish==0.2)")
    spec = importlib.util.spec_from_file_location(f"_original_torchvggish_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def audio16() -> np.ndarray:
    return real_audio(4.0, 16000, seed=11, instrument="cello")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory, audio16: np.ndarray) -> Path:
    """Random VGGish weights and PCA parameters in the torchvggish release formats.

    ``vggish-10086976.pth``: a state_dict with torchvggish's key names; ``vggish_pca_params-970ea276.pth``:
    ``{'pca_eigen_vectors': ndarray (128, 128), 'pca_means': ndarray (128,)}``, scaled so the
    quantised values use the 0..255 range.
    """
    folder = tmp_path_factory.mktemp("vggish")
    torch.manual_seed(0)
    net = VGGishNet().eval()
    torch.save(net.state_dict(), folder / "vggish-10086976.pth")
    with torch.no_grad():
        log_mel = VGGishFrontend()(torch.from_numpy(audio16)[None])  # (1, 1, frames, 64)
        raw = net(log_mel.unfold(2, 96, 96)[0].permute(1, 0, 3, 2)).numpy()  # examples (k, 1, 96, 64)
    spread = (raw - raw.mean(axis=0)).std() + 1e-6  # so the projections spread over [-2, 2]
    vectors = np.linalg.qr(np.random.default_rng(0).normal(size=(128, 128)))[0] / spread
    torch.save({"pca_eigen_vectors": vectors, "pca_means": raw.mean(axis=0)},
               folder / "vggish_pca_params-970ea276.pth")
    return folder


@pytest.fixture(scope="module")
def teacher(weights_dir: Path) -> VGGishTeacher:
    return VGGishTeacher(VGGishConfig(weights=str(weights_dir))).load("cpu")


# ---- against the original package ---------------------------------------------------------
def test_frontend_matches_torchvggish_mel_features(audio16: np.ndarray) -> None:
    mf, vp = torchvggish_module("mel_features"), torchvggish_module("vggish_params")
    ref = mf.log_mel_spectrogram(
        audio16.astype(np.float64), audio_sample_rate=vp.SAMPLE_RATE, log_offset=vp.LOG_OFFSET,
        window_length_secs=vp.STFT_WINDOW_LENGTH_SECONDS, hop_length_secs=vp.STFT_HOP_LENGTH_SECONDS,
        num_mel_bins=vp.NUM_MEL_BINS, lower_edge_hertz=vp.MEL_MIN_HZ, upper_edge_hertz=vp.MEL_MAX_HZ)
    ours = VGGishFrontend()(torch.from_numpy(audio16)[None])[0, 0].numpy()
    assert ours.shape == ref.shape == (1 + (len(audio16) - 400) // 160, 64)
    assert np.abs(ours - ref).max() < 1e-5
    assert np.allclose(mel_matrix(), mf.spectrogram_to_mel_matrix(64, 257, 16000, 125, 7500), atol=1e-12)


def test_embeddings_equal_torchvggish(weights_dir: Path, teacher: VGGishTeacher, audio16: np.ndarray) -> None:
    """The original code on the same files: waveform_to_examples (no resampling), VGG, Postprocessor."""
    tv, mf, vp = (torchvggish_module(n) for n in ("torchvggish", "mel_features", "vggish_params"))
    log_mel = mf.log_mel_spectrogram(
        audio16.astype(np.float64), audio_sample_rate=16000, log_offset=vp.LOG_OFFSET,
        window_length_secs=vp.STFT_WINDOW_LENGTH_SECONDS, hop_length_secs=vp.STFT_HOP_LENGTH_SECONDS,
        num_mel_bins=vp.NUM_MEL_BINS, lower_edge_hertz=vp.MEL_MIN_HZ, upper_edge_hertz=vp.MEL_MAX_HZ)
    examples = torch.tensor(mf.frame(log_mel, window_length=96, hop_length=96))[:, None].float()
    original = tv.VGG(tv.make_layers(), postprocess=False).eval()  # pretrained=False: nothing is fetched
    original.load_state_dict(torch.load(weights_dir / "vggish-10086976.pth", weights_only=True))
    pproc = object.__new__(tv.Postprocessor)  # its __init__ downloads the PCA file; give it ours
    params = torch.load(weights_dir / "vggish_pca_params-970ea276.pth", weights_only=False)
    pproc._pca_matrix = torch.as_tensor(params["pca_eigen_vectors"]).float()
    pproc._pca_means = torch.as_tensor(params["pca_means"].reshape(-1, 1)).float()
    with torch.no_grad():
        raw_ref = original(examples)
        post_ref = pproc.postprocess(raw_ref).numpy()

    ours = teacher.embed(audio16)[0]
    assert ours.shape == post_ref.shape == (len(examples), 128) == (teacher.num_frames(len(audio16)), 128)
    assert 0 <= ours.min() and ours.max() <= 255 and np.array_equal(ours, np.round(ours)) and ours.std() > 5
    mismatch = ours != post_ref  # a float rounding at a .5 boundary may flip one quantisation step
    assert np.abs(ours - post_ref).max() <= 1 and mismatch.mean() < 0.005
    raw = VGGishTeacher(VGGishConfig(weights=str(weights_dir), postprocess=False)).load().embed(audio16)[0]
    assert np.abs(raw - raw_ref.numpy()).max() <= 1e-5 * np.abs(raw_ref.numpy()).max()


@pytest.mark.slow
@pytest.mark.tf
def test_tf_slim_checkpoint_matches_the_tf_graph(tmp_path_factory: pytest.TempPathFactory,
                                                 tmp_path: Path) -> None:
    """vggish_model.ckpt (TF-slim names, HWIO / (in, out) kernels) read by our loader, in a subprocess."""
    ref = reference_dir(tmp_path_factory.getbasetemp())
    inputs = reference_inputs()
    audio = real_audio(3.0, 16000, seed=5, instrument="violin")  # the audio reference_inputs() framed
    np.save(tmp_path / "audio.npy", audio)
    code = (
        "import sys, numpy as np\n"
        "from pipeline.teachers.vggish import VGGishConfig, VGGishTeacher\n"
        "d, out = sys.argv[1], sys.argv[2]\n"
        "audio = np.load(out + '/audio.npy')\n"
        "t = VGGishTeacher(VGGishConfig(weights=d + '/vggish_model.ckpt')).load()\n"
        "np.save(out + '/ours_True.npy', t.embed(audio)[0])\n"
        "t._model.pproc = None  # the same loaded net, without post-processing\n"
        "np.save(out + '/ours_False.npy', t.embed(audio)[0])\n"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-c", code, str(ref), str(tmp_path)], check=True, env=env, cwd=ROOT,
                   capture_output=True, timeout=1800)
    slim = np.load(ref / "slim_out.npy")
    raw = np.load(tmp_path / "ours_False.npy")[: len(slim)]
    assert len(inputs["examples"]) == len(slim) == 3
    assert np.abs(raw - slim).max() <= 1e-5 * np.abs(slim).max()
    with np.load(ref / "vggish_pca_params.npz") as pca:
        projected = (slim - pca["pca_means"]) @ pca["pca_eigen_vectors"].T
    expected = np.round((np.clip(projected, -2, 2) + 2) * 255 / 4)
    post = np.load(tmp_path / "ours_True.npy")[: len(slim)]
    assert np.abs(post - expected).max() <= 1 and (post != expected).mean() < 0.01


# ---- geometry -----------------------------------------------------------------------------
def test_examples_and_times_follow_vggish_framing() -> None:
    """torchvggish: frames = 1 + (n - 400) // 160; examples = frames // 96 (the rest dropped)."""
    teacher = build_teacher("vggish")
    for n in (15600, 15601, 30959, 30960, 30961, 16000 * 10, int(16000 * 29.1), 16000 * 60 + 7):
        assert teacher.num_frames(n) == (1 + (n - 400) // 160) // 96, n
    assert teacher.num_frames(16000 * 10) == 10  # the official code: 10 frames per OpenMIC clip
    # shorter than one example: one zero-padded window (torchvggish gives none)
    assert teacher.num_frames(15599) == 1
    times = teacher.frame_times(3)
    assert np.allclose(times, [0.4875, 1.4475, 2.4075])  # center of samples [15360 k, 15360 k + 15600)
    assert teacher.hop_seconds == pytest.approx(0.96) and teacher.window_seconds == pytest.approx(0.975)


# ---- contract -----------------------------------------------------------------------------
def test_embed_shapes_and_batch_consistency(teacher: VGGishTeacher, audio16: np.ndarray) -> None:
    batch = np.stack([audio16, audio16[::-1].copy()])
    out = teacher.embed(batch)
    assert out.shape == (2, 4, 128) and out.dtype == np.float32
    single = teacher.embed(audio16[::-1].copy())
    assert np.array_equal(single[0], out[1])
    assert not np.array_equal(out[0], out[1])


def test_silence_and_very_short_input(teacher: VGGishTeacher) -> None:
    silent = teacher.embed(np.zeros((1, 16000 * 3), np.float32))
    assert np.isfinite(silent).all() and np.allclose(silent, silent[0, 0])
    short = teacher.embed(np.full((2, 100), 0.1, np.float32))
    assert short.shape == (2, 1, 128) and np.isfinite(short).all()
    with pytest.raises(TeacherError, match="15600"):
        teacher.embed_windows(np.zeros((1, 16000), np.float32))


def test_describe_records_the_loader_normalisation(teacher: VGGishTeacher, weights_dir: Path) -> None:
    info = teacher.describe()
    assert info["config"]["loader_normalization"] == {"subtract": 128.0, "divide": 256.0}
    assert "weights" not in info["config"] and "pca_weights" not in info["config"]
    assert info["frame0_center_seconds"] == pytest.approx(0.4875) and info["dim"] == 128
    raw = VGGishTeacher(VGGishConfig(weights=str(weights_dir), postprocess=False))
    assert raw.describe()["config"]["loader_normalization"] == {"subtract": 0.0, "divide": 1.0}
    assert len(raw.weight_files()) == 1 and raw.weights_sha256 != teacher.weights_sha256


# ---- files and errors ---------------------------------------------------------------------
def test_explicit_files_and_hub_cache_are_found(weights_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = VGGishTeacher(VGGishConfig(weights=str(weights_dir / "vggish-10086976.pth"),
                                          pca_weights=str(weights_dir / "vggish_pca_params-970ea276.pth")))
    assert explicit.weight_files() == [
        weights_dir / "vggish-10086976.pth", weights_dir / "vggish_pca_params-970ea276.pth"]
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    assert not build_teacher("vggish").weights_available()
    for name in ("vggish-10086976.pth", "vggish_pca_params-970ea276.pth"):
        (hub / name).symlink_to(weights_dir / name)
    assert build_teacher("vggish").weights_available()


def test_missing_weights_say_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    teacher = build_teacher("vggish")
    assert not teacher.weights_available()
    with pytest.raises(WeightsNotFoundError) as info:
        teacher.load()
    message = str(info.value)
    assert "vggish-10086976.pth" in message and "vggish_pca_params-970ea276.pth" in message
    assert "teachers.vggish.weights" in message and "\n" not in message


def test_missing_pca_file_is_named(weights_dir: Path, tmp_path: Path) -> None:
    lone = tmp_path / "vggish-10086976.pth"
    lone.symlink_to(weights_dir / "vggish-10086976.pth")
    with pytest.raises(WeightsNotFoundError, match="vggish_pca_params"):
        VGGishTeacher(VGGishConfig(weights=str(lone))).load()
    assert VGGishTeacher(VGGishConfig(weights=str(lone), postprocess=False)).weights_available()


def test_wrong_files_are_refused(tmp_path: Path, weights_dir: Path) -> None:
    bad = tmp_path / "vggish-10086976.pth"
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3)}, bad)
    with pytest.raises(TeacherError, match="does not fit the VGGish network"):
        VGGishTeacher(VGGishConfig(weights=str(bad), postprocess=False)).load()
    pca = tmp_path / "pca.npz"
    np.savez(pca, pca_eigen_vectors=np.eye(64), pca_means=np.zeros(64))
    with pytest.raises(TeacherError, match=r"\(128, 128\)"):
        VGGishTeacher(VGGishConfig(weights=str(weights_dir), pca_weights=str(pca))).load()
    pickled = tmp_path / "evil.pth"
    # anything beyond tensors and arrays is not unpickled
    torch.save({"x": __import__("datetime").date(2020, 1, 1)}, pickled)
    with pytest.raises(TeacherError, match="cannot read"):
        VGGishTeacher(VGGishConfig(weights=str(pickled), postprocess=False)).load()
