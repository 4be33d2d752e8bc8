"""OpenL3 teacher: torch port vs Keras on official-format ``.h5`` files, front ends, geometry, contract."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError, TeacherError, WeightsNotFoundError
from pipeline.teachers import build_teacher
from pipeline.teachers.openl3 import OpenL3Config, OpenL3Teacher
from pipeline.teachers.openl3_net import OpenL3Frontend, OpenL3Net, mel_filters
from pipeline.teachers.weights import package_dir
from tests.fixtures_tf_teachers import real_audio, reference_dir, reference_inputs

torch.set_num_threads(1)


def write_openl3_h5(path: Path, seed: int = 0, *, rename: bool = False,
                    extra_kapre_layer: bool = False) -> Path:
    """An OpenL3 weight file in the Keras-2 ``save_weights`` layout, written with h5py (no TF).

    ``rename`` uses other layer names/suffixes (as other openl3 releases do); ``extra_kapre_layer``
    prepends a weighted front-end layer like the v0.2.0 files have.
    """
    rng = np.random.default_rng(seed)
    layers: list[tuple[str, list[tuple[str, np.ndarray]]]] = [("input_1", [])]
    if extra_kapre_layer:
        other = np.random.default_rng(seed + 1)  # keep the network's draws as without this layer
        dft = other.normal(size=(2048, 1, 1, 1025)).astype(np.float32)
        layers.append(("melspectrogram_1", [("dft_real_kernels:0", dft),
                                            ("freq2mel:0", other.random((1025, 128)).astype(np.float32))]))
    n_bn = n_conv = 0
    for kind, shapes in OpenL3Net().expected_shapes():
        if kind == "bn":
            c = shapes[0][0]
            name = f"bn_{n_bn + 7}" if rename else ("batch_normalization" + (f"_{n_bn}" if n_bn else ""))
            mean, var = (rng.uniform(-50, -30, c), rng.uniform(200, 600, c)) if n_bn == 0 else (
                rng.normal(0, 0.5, c), rng.uniform(0.5, 2.0, c))
            arrays = [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), mean, var]
            layers.append((name, [(f"{name}/{w}:0", a.astype(np.float32)) for w, a in
                                  zip(("gamma", "beta", "moving_mean", "moving_variance"), arrays)]))
            n_bn += 1
        else:
            kernel_shape = shapes[0]
            name = "audio_embedding_layer" if n_conv == 7 else (
                f"conv_{n_conv + 3}" if rename else "conv2d" + (f"_{n_conv}" if n_conv else ""))
            kernel = rng.normal(0, math.sqrt(2.0 / (9 * kernel_shape[2])), kernel_shape)
            bias = rng.normal(0, 0.05, kernel_shape[3]).astype(np.float32)
            layers.append((name, [(f"{name}/kernel:0", kernel.astype(np.float32)), (f"{name}/bias:0", bias)]))
            layers.append((f"activation_{n_conv}", []))
            n_conv += 1
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [n.encode() for n, _ in layers]
        handle.attrs["backend"] = b"tensorflow"
        for name, arrays in layers:
            group = handle.create_group(name)
            group.attrs["weight_names"] = [w.encode() for w, _ in arrays]
            for weight_name, array in arrays:
                group.create_dataset(weight_name, data=array)
    return path


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_openl3_h5(tmp_path_factory.mktemp("openl3") / "openl3_audio_mel128_music.h5")


@pytest.fixture(scope="module")
def teacher(h5_file: Path) -> OpenL3Teacher:
    return OpenL3Teacher(OpenL3Config(weights=str(h5_file), backend="torch")).load("cpu")


@pytest.fixture(scope="module")
def keras_ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reference_dir(tmp_path_factory.getbasetemp())


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


# ---- against Keras (tf-keras in a subprocess) ----------------------------------------------
@pytest.mark.slow
@pytest.mark.tf
def test_keras_file_has_the_official_layout(keras_ref: Path) -> None:
    with h5py.File(keras_ref / "openl3_audio_mel128_music.h5", "r") as handle:
        names = [n.decode() if isinstance(n, bytes) else n for n in handle.attrs["layer_names"]]
        weighted = [n for n in names if len(handle[n].attrs["weight_names"])]
        bn_weights = [w.decode() if isinstance(w, bytes) else w
                      for w in handle[weighted[0]].attrs["weight_names"]]
    assert names[0] == "input_1" and len(names) == 27
    assert weighted == ["batch_normalization", "conv2d"] + [
        n for i in range(1, 7) for n in (f"batch_normalization_{i}", f"conv2d_{i}")
    ] + ["batch_normalization_7", "audio_embedding_layer"]
    assert [w.split("/")[-1] for w in bn_weights] == [
        "gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"]


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("input_repr,size",
                         [("mel128", 512), ("mel128", 6144), ("linear", 512), ("linear", 6144)])
def test_torch_port_matches_keras(keras_ref: Path, input_repr: str, size: int) -> None:
    """Same .h5, same audio: our front end + net vs openl3's librosa front end + the Keras net."""
    config = OpenL3Config(input_repr=input_repr, embedding_size=size, frontend="librosa", backend="torch",
                          weights=str(keras_ref / f"openl3_audio_{input_repr}_music.h5"))
    ours = OpenL3Teacher(config).load("cpu").embed_windows(reference_inputs()["windows48"])
    keras = np.load(keras_ref / f"keras_{input_repr}_{size}.npy")
    assert ours.shape == (4, 1, size)
    assert rel_diff(ours[:, 0], keras) <= 1e-4
    assert np.abs(keras).max() > 1.0  # the check is not trivially met by tiny outputs


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("input_repr", ["mel128", "linear"])
def test_kapre_frontend_matches_tf_signal_stft(keras_ref: Path, input_repr: str) -> None:
    """openl3 0.4.x kapre front end (tf.signal.stft, pad_end) restated in TF vs ours."""
    ref = np.load(keras_ref / f"kapre_{input_repr}.npy")
    windows = torch.from_numpy(reference_inputs()["windows48"])
    ours = OpenL3Frontend(input_repr, "kapre")(windows)[:, 0].numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-3


# ---- front ends against librosa (no TF) -----------------------------------------------------
def _librosa_db(spec: np.ndarray) -> np.ndarray:
    import librosa

    spec = librosa.power_to_db(spec, ref=1.0, amin=1e-10, top_db=80.0)
    return spec - spec.max()


@pytest.mark.parametrize("n_mels,pad_mode", [(128, "constant"), (128, "reflect"), (256, "constant")])
def test_librosa_frontend_matches_librosa(n_mels: int, pad_mode: str) -> None:
    import librosa

    window = real_audio(1.0, 48000, seed=1)
    ref = _librosa_db(librosa.feature.melspectrogram(
        y=window.astype(np.float64), sr=48000, n_mels=n_mels, n_fft=2048, hop_length=242, center=True,
        power=1.0, pad_mode=pad_mode))
    ours = OpenL3Frontend(f"mel{n_mels}", "librosa", pad_mode)(torch.from_numpy(window)[None])[0, 0].numpy()
    assert ours.shape == (n_mels, 199)
    assert np.abs(ours - ref).max() < 1e-4
    assert ours.min() == pytest.approx(-80.0) and ours.max() == 0.0


def test_linear_frontend_matches_librosa() -> None:
    import librosa

    window = real_audio(1.0, 48000, seed=2)
    spec = librosa.stft(window.astype(np.float64), n_fft=512, hop_length=242, center=False)
    ref = _librosa_db(np.abs(spec))
    ours = OpenL3Frontend("linear", "librosa")(torch.from_numpy(window)[None])[0, 0].numpy()
    assert ours.shape == (257, 197)
    assert np.abs(ours - ref).max() < 1e-4


def test_kapre_014_frontend_matches_its_definition() -> None:
    """kapre 0.1.4: Keras 'same' padding, hann DFT, sqrt(HTK-mel @ power), amplitude_to_decibel."""
    import librosa

    window = real_audio(1.0, 48000, seed=3).astype(np.float64)
    padded = np.pad(window, (982, 982))  # TF 'same': total (199 - 1) * 242 + 2048 - 48000 = 1964
    power = np.abs(librosa.stft(padded, n_fft=2048, hop_length=242, center=False)) ** 2
    mel = librosa.filters.mel(sr=48000, n_fft=2048, n_mels=128, htk=True, norm="slaney")
    log = 10 * np.log10(np.maximum(np.sqrt(mel @ power), 1e-10))
    ref = np.maximum(log - log.max(), -80.0)
    x = torch.from_numpy(window.astype(np.float32))[None]
    ours = OpenL3Frontend("mel128", "kapre-0.1.4")(x)[0, 0].numpy()
    assert ours.shape == ref.shape == (128, 199)
    assert np.abs(ours - ref).max() < 1e-3


@pytest.mark.parametrize("n_mels,htk", [(128, False), (256, False), (128, True)])
def test_mel_filters_equal_librosa(n_mels: int, htk: bool) -> None:
    import librosa

    ref = librosa.filters.mel(sr=48000, n_fft=2048, n_mels=n_mels, htk=htk, norm="slaney")
    assert np.allclose(mel_filters(48000, 2048, n_mels, htk=htk), ref, rtol=1e-5, atol=1e-9)


# ---- geometry against openl3's formulas -----------------------------------------------------
def _openl3_frames(audio: np.ndarray, hop_size: float, center: bool) -> np.ndarray:
    """openl3 core.py ``_preprocess_audio_batch`` restated: center pad, tail pad, framing.

    ``frame_len = 48000``, ``hop_len = int(hop_size * 48000)``; with ``center`` prepend
    ``int(frame_len / 2)`` zeros; pad the end with ``frame_len - len`` zeros when shorter than a
    frame, else ``ceil((len - frame_len) / hop_len) * hop_len - (len - frame_len)`` zeros;
    ``n_frames = 1 + int((len - frame_len) / hop_len)``; frame ``k`` starts at ``k * hop_len``.
    Timestamps are ``arange(n_frames) * hop_size``.
    """
    frame_len, hop_len = 48000, int(hop_size * 48000)
    if center:
        audio = np.pad(audio, (frame_len // 2, 0))
    if audio.size < frame_len:
        pad = frame_len - audio.size
    else:
        pad = int(np.ceil((audio.size - frame_len) / float(hop_len))) * hop_len - (audio.size - frame_len)
    audio = np.pad(audio, (0, max(pad, 0)))
    n_frames = 1 + int((len(audio) - frame_len) / float(hop_len))
    return np.stack([audio[k * hop_len : k * hop_len + frame_len] for k in range(n_frames)])


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("hop_size", [0.96, 0.1, 0.5, 0.29])
def test_windows_and_timestamps_match_openl3(center: bool, hop_size: float) -> None:
    teacher = OpenL3Teacher(OpenL3Config(hop_seconds=hop_size, center=center))
    for n in (1, 100, 23999, 24000, 47999, 48000, 48001, 70000, 94080, 100000, 480007):
        audio = np.arange(1, n + 1, dtype=np.float32)  # distinct samples: any framing slip shows
        frames = _openl3_frames(audio, hop_size, center)
        assert teacher.num_frames(n) == len(frames), n
        assert np.array_equal(teacher.grid.cut(audio, 0, len(frames)), frames), n
        times = teacher.frame_times(len(frames))
        hop_len = int(hop_size * 48000)
        assert np.allclose(times, np.arange(len(frames)) * hop_len / 48000 + (0.0 if center else 0.5))
        # openl3's timestamps: centers when centered, window starts otherwise; off by < 1 sample per hop
        openl3_ts = np.arange(len(frames)) * hop_size
        assert np.allclose(times - (0.0 if center else 0.5), openl3_ts, atol=len(frames) / 48000)
        if hop_size * 48000 == hop_len:
            assert np.allclose(times - (0.0 if center else 0.5), openl3_ts, rtol=0, atol=1e-9)


def test_paper_geometry() -> None:
    teacher = build_teacher("openl3")
    config = teacher.config
    assert (config.input_repr, config.content_type, teacher.embedding_dim) == ("mel128", "music", 512)
    assert teacher.hop_seconds == pytest.approx(0.96) and teacher.frame0_center_seconds == 0.0
    # the official code: 11 frames per OpenMIC clip, 31 per MTT clip
    assert teacher.num_frames(10 * 48000) == 11 and teacher.num_frames(int(29.1 * 48000)) == 31


# ---- the h5 reader --------------------------------------------------------------------------
def test_loader_takes_layers_in_order_whatever_their_names(tmp_path: Path, teacher: OpenL3Teacher) -> None:
    other = write_openl3_h5(tmp_path / "openl3_audio_mel128_music.h5", rename=True, extra_kapre_layer=True)
    renamed = OpenL3Teacher(OpenL3Config(weights=str(other), backend="torch")).load("cpu")
    windows = reference_inputs()["windows48"][:2]
    assert np.array_equal(renamed.embed_windows(windows), teacher.embed_windows(windows))


def test_bad_weight_files_are_named(tmp_path: Path, h5_file: Path) -> None:
    short = tmp_path / "openl3_audio_mel128_music.h5"
    with h5py.File(h5_file, "r") as src, h5py.File(short, "w") as dst:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in src.attrs["layer_names"]]
        kept = names[: names.index("audio_embedding_layer")]
        dst.attrs["layer_names"] = [n.encode() for n in kept]
        for name in kept:
            src.copy(src[name], dst, name=name)
    with pytest.raises(TeacherError, match="audio_embedding|weighted layer #15"):
        OpenL3Teacher(OpenL3Config(weights=str(short), backend="torch")).load()
    garbage = tmp_path / "junk" / "openl3_audio_mel128_music.h5"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(TeacherError, match="junk"):
        OpenL3Teacher(OpenL3Config(weights=str(garbage), backend="torch")).load()


def test_file_for_another_model_is_refused(h5_file: Path) -> None:
    with pytest.raises(ConfigError, match="mel128/music.*mel256"):
        OpenL3Teacher(OpenL3Config(input_repr="mel256", weights=str(h5_file), backend="torch")).load()


def test_weights_folder_is_searched_for_the_official_name(h5_file: Path) -> None:
    teacher = OpenL3Teacher(OpenL3Config(weights=str(h5_file.parent)))
    assert teacher.weight_files() == [h5_file] and teacher.weights_available()


# ---- contract -------------------------------------------------------------------------------
def test_embed_shapes_frames_and_batch_consistency(teacher: OpenL3Teacher) -> None:
    audio = real_audio(2.5, 48000, seed=4)
    batch = np.stack([audio, audio[::-1].copy()])
    out = teacher.embed(batch)
    n = teacher.num_frames(len(audio))
    assert out.shape == (2, n, 512) and out.dtype == np.float32 and n == 4
    single = teacher.embed(audio[::-1].copy())
    assert np.allclose(single[0], out[1], rtol=1e-5, atol=1e-5 * np.abs(out).max())
    assert np.isfinite(out).all() and np.abs(out[0] - out[1]).max() > 1e-3


def test_blocks_of_a_long_file_give_the_same_frames(teacher: OpenL3Teacher) -> None:
    audio = real_audio(3.5, 48000, seed=6)
    whole = teacher.embed(audio)[0]
    grid = teacher.grid
    lo, hi = grid.block_span(2, 2, len(audio))
    block = teacher.embed_windows(grid.cut(audio[lo:hi], 2, 2, offset=lo))[:, 0]
    assert np.allclose(block, whole[2:4], rtol=1e-5, atol=1e-5 * np.abs(whole).max())


def test_silence_and_very_short_input(teacher: OpenL3Teacher) -> None:
    silent = teacher.embed(np.zeros((2, 48000 * 2), np.float32))
    assert np.isfinite(silent).all() and np.allclose(silent, silent[0, 0])
    short = teacher.embed(np.full((1, 10), 0.1, np.float32))
    assert short.shape == (1, 1, 512) and np.isfinite(short).all()


def test_windows_of_the_wrong_size_are_refused(teacher: OpenL3Teacher) -> None:
    with pytest.raises(TeacherError, match="48000"):
        teacher.embed_windows(np.zeros((1, 16000), np.float32))


def test_describe_records_backend_and_normalisation(teacher: OpenL3Teacher) -> None:
    info = teacher.describe()
    assert info["config"]["backend"] == "torch" and "weights" not in info["config"]
    assert info["config"]["loader_normalization"] == {"subtract": 2.24, "divide": 1.0}
    assert info["dim"] == 512 and info["sample_rate"] == 48000 and len(info["weights_sha256"]) == 64


# ---- settings and missing weights -----------------------------------------------------------
@pytest.mark.parametrize("key,value", [
    ("content_type", "speech"), ("input_repr", "mel64"), ("embedding_size", 128),
    ("frontend", "essentia"), ("backend", "tf"), ("pad_mode", "edge"), ("hop_seconds", 0.0)])
def test_bad_settings_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"teachers.openl3.{key}"):
        build_teacher("openl3", {key: value})


@pytest.mark.skipif(package_dir("openl3") is not None, reason="the openl3 package is installed here")
def test_missing_weights_say_how_to_get_them() -> None:
    teacher = build_teacher("openl3")
    assert not teacher.weights_available()
    with pytest.raises(WeightsNotFoundError) as info:
        teacher.load()
    message = str(info.value)
    assert "pip install openl3" in message and "teachers.openl3.weights" in message and "\n" not in message


def test_missing_weight_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "openl3_audio_mel128_music.h5"
    with pytest.raises(WeightsNotFoundError, match="nowhere.*pip install openl3"):
        build_teacher("openl3", {"weights": str(path)}).load()


def test_weights_available_never_imports_tensorflow_or_torch() -> None:
    code = ("import sys; from pipeline.teachers import build_teacher; t = build_teacher('openl3'); "
            "t.weights_available(); t.resolved_backend(); "
            "print('tensorflow' in sys.modules, 'pipeline.teachers.openl3_net' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "False"]


# ---- the openl3 package backend -------------------------------------------------------------
@pytest.mark.tf
@pytest.mark.skipif(package_dir("openl3") is None, reason="the openl3 package is not installed (its pip "
                    "build downloads the weights, which needs internet access)")
def test_openl3_package_backend_agrees_with_torch(h5_file: Path, teacher: OpenL3Teacher) -> None:
    windows = reference_inputs()["windows48"][:2]
    package = OpenL3Teacher(OpenL3Config(weights=str(h5_file), backend="openl3", frontend="librosa")).load()
    ours = OpenL3Teacher(OpenL3Config(weights=str(h5_file), backend="torch", frontend="librosa")).load()
    assert rel_diff(ours.embed_windows(windows), package.embed_windows(windows)) <= 1e-4


def test_exact_float32_turns_tf32_off_and_restores_the_settings() -> None:
    from pipeline.teachers.precision import exact_float32

    cudnn = torch.backends.cudnn
    before = (cudnn.allow_tf32, torch.get_float32_matmul_precision(), cudnn.enabled)
    torch.set_float32_matmul_precision("high")
    try:
        with exact_float32():
            assert not torch.backends.cudnn.allow_tf32 and torch.get_float32_matmul_precision() == "highest"
            assert torch.backends.cudnn.enabled == before[2]
        assert torch.backends.cudnn.allow_tf32 == before[0] and torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before[1])
