"""PANNs teacher contract: clip and frame level geometry, weights handling, shapes, limits (tiny CNN14)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipeline.errors import ConfigError, TeacherError, WeightsNotFoundError  # noqa: E402
from pipeline.teachers import TEACHERS, build_teacher, panns_net  # noqa: E402
from pipeline.teachers.panns import CHECKPOINT_NAME, PannsConfig, PannsTeacher  # noqa: E402

TINY = {"widths": (4, 8, 8, 8, 8, 16), "num_classes": 527}
SR = 32000


class TinyPanns(PannsTeacher):
    architecture = TINY


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    torch.manual_seed(0)
    net = panns_net.Cnn14(**TINY)
    with torch.no_grad():  # variance-preserving random weights, bn0 at log-mel scale
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module is not net.fc_audioset:
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        net.bn0.running_mean.fill_(-40.0)
        net.bn0.running_var.fill_(400.0)
    path = tmp_path_factory.mktemp("panns") / CHECKPOINT_NAME
    torch.save({"iteration": 0, "model": net.state_dict()}, path)
    return str(path)


def _teacher(weights: str, **settings: object) -> PannsTeacher:
    torch.set_num_threads(1)
    return TinyPanns(PannsConfig(weights=weights, **settings)).load("cpu")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def clip_teacher(weights) -> PannsTeacher:
    return _teacher(weights)


@pytest.fixture(scope="module")
def frame_teacher(weights) -> PannsTeacher:
    return _teacher(weights, level="frame")


def _audio(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    return (0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def test_registered_clip_level_by_default() -> None:
    teacher = build_teacher("panns", {})
    assert TEACHERS.get("panns") is PannsTeacher
    assert (teacher.sample_rate, teacher.embedding_dim, teacher.grid) == (32000, 2048, None)
    assert teacher.num_frames(10 * SR) == teacher.num_frames(SR) == 1
    # the one frame is centered at duration / 2
    np.testing.assert_allclose(teacher.frame_times(1, duration_seconds=10.0), [5.0])
    assert teacher.hop_seconds == teacher.window_seconds == 0.0


def test_frame_level_geometry() -> None:
    teacher = build_teacher("panns", {"level": "frame"})
    assert teacher.window_seconds == 2.0 and teacher.hop_seconds == 1.0
    assert teacher.frame0_center_seconds == pytest.approx(0.5)  # frame k covers second k, +-0.5 s context
    assert teacher.num_frames(10 * SR) == 10
    assert teacher.num_frames(int(10.2 * SR)) == 11 - 1  # the 10th window already covers the end
    assert teacher.num_frames(int(10.6 * SR)) == 11
    np.testing.assert_allclose(teacher.frame_times(3), [0.5, 1.5, 2.5])
    custom = build_teacher("panns", {"level": "frame", "window_seconds": 1.0, "hop_seconds": 1.0})
    assert custom.frame0_center_seconds == pytest.approx(0.5) and custom.num_frames(5 * SR) == 5


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="level"):
        build_teacher("panns", {"level": "segment"})
    with pytest.raises(ConfigError, match="window_seconds"):
        build_teacher("panns", {"level": "frame", "window_seconds": 0.2, "hop_seconds": 0.1})
    with pytest.raises(ConfigError, match="hop_seconds"):
        build_teacher("panns", {"level": "frame", "window_seconds": 1.0, "hop_seconds": 2.0})
    with pytest.raises(ConfigError, match="max_clip_seconds"):
        build_teacher("panns", {"max_clip_seconds": 0})


def test_missing_weights_error_says_where_they_come_from(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    teacher = build_teacher("panns", {})
    assert teacher.weight_files() == [tmp_path / "panns_data" / CHECKPOINT_NAME]  # panns_inference's place
    assert not teacher.weights_available()
    with pytest.raises(WeightsNotFoundError) as info:
        teacher.load()
    message = str(info.value)
    assert CHECKPOINT_NAME in message and "Zenodo" in message and "teachers.panns.weights" in message
    assert "\n" not in message


def test_wrong_or_broken_checkpoint_is_a_clear_error(tmp_path) -> None:
    other = tmp_path / "other.pth"
    torch.save({"model": {"fc1.weight": torch.zeros(16, 16)}}, other)
    with pytest.raises(TeacherError, match=r"missing \(\d+\): bn0"):
        TinyPanns(PannsConfig(weights=str(other))).load()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(b"PK\x03\x04 partial download")
    with pytest.raises(TeacherError, match="cannot read PANNs checkpoint"):
        TinyPanns(PannsConfig(weights=str(truncated))).load()


def test_release_format_with_numpy_sampler_state_loads(tmp_path, weights) -> None:
    """The release files also pickle the training sampler's numpy state; that must not block loading."""
    state = torch.load(weights, weights_only=True)["model"]
    path = tmp_path / CHECKPOINT_NAME
    sampler = {"indexes_per_class": [np.arange(3), np.arange(5)],
               "random_state": np.random.RandomState(1).get_state()}
    torch.save({"iteration": 660000, "model": state, "sampler": sampler}, path)
    clip = _audio(1.0, 7)[None]
    np.testing.assert_array_equal(_teacher(str(path)).embed(clip), _teacher(weights).embed(clip))


def test_clip_level_shapes_and_batch_consistency(clip_teacher) -> None:
    audio = np.stack([_audio(1.5, 0), _audio(1.5, 1), np.zeros(int(1.5 * SR), np.float32)])
    out = clip_teacher.embed(audio)
    assert out.shape == (3, 1, 16) and out.dtype == np.float32 and np.isfinite(out).all()
    assert not np.allclose(out[0], out[1])
    for row in range(3):
        np.testing.assert_allclose(out[row], clip_teacher.embed(audio[row])[0], rtol=1e-5, atol=1e-6)


def test_frame_level_shapes_batch_consistency_and_blocks(frame_teacher) -> None:
    audio = np.stack([_audio(3.6, 2), _audio(3.6, 3)])
    out = frame_teacher.embed(audio)
    assert out.shape == (2, frame_teacher.num_frames(audio.shape[1]), 16) == (2, 4, 16)
    np.testing.assert_allclose(out[1], frame_teacher.embed(audio[1])[0], rtol=1e-5, atol=1e-6)
    grid = frame_teacher.grid
    lo, hi = grid.block_span(1, 3, audio.shape[1])  # stage one: windows cut from a block of the track
    tail = frame_teacher.embed_windows(grid.cut(audio[0, lo:hi], 1, 3, offset=lo))[:, 0]
    np.testing.assert_allclose(tail, out[0, 1:], rtol=1e-5, atol=1e-6)


def test_silence_and_very_short_input(clip_teacher, frame_teacher) -> None:
    for teacher in (clip_teacher, frame_teacher):
        silent = teacher.embed(np.zeros((1, SR), np.float32))
        assert np.isfinite(silent).all() and silent.shape[-1] == 16
    # The original CNN14 raises below 32 STFT frames (0.31 s); ours zero-pads to that length.
    for n in (1, 600, 9000):
        short = clip_teacher.embed(_audio(n / SR, 4)[None])
        assert short.shape == (1, 1, 16) and np.isfinite(short).all()
        assert frame_teacher.embed(_audio(n / SR, 4)[None]).shape == (1, 1, 16)
    with pytest.raises(TeacherError, match="9920"):
        clip_teacher._net.embed(torch.zeros(1, 100))


def test_clip_level_refuses_long_clips_and_suggests_frame_level(weights) -> None:
    teacher = _teacher(weights, max_clip_seconds=1.0)
    with pytest.raises(TeacherError, match=r"max_clip_seconds=1.0.*level: frame"):
        teacher.embed(_audio(1.5, 5)[None])
    with pytest.raises(TeacherError, match="3600.0 s clip"):
        build_teacher("panns", {}).check_clip(3600 * SR)  # a one-hour file, refused before any decoding
    assert teacher.embed(_audio(1.0, 5)[None]).shape == (1, 1, 16)


def test_embed_windows_checks_its_input(frame_teacher, weights) -> None:
    with pytest.raises(TeacherError, match="64000"):
        frame_teacher.embed_windows(np.zeros((1, 1000), np.float32))
    with pytest.raises(TeacherError, match="load"):
        TinyPanns(PannsConfig(weights=weights)).embed_windows(np.zeros((1, SR), np.float32))


def test_describe_records_level_and_weights(clip_teacher, frame_teacher) -> None:
    clip, frame = clip_teacher.describe(), frame_teacher.describe()
    assert clip["clip_level"] and not frame["clip_level"]
    assert clip["config"]["level"] == "clip" and frame["config"]["level"] == "frame"
    assert "weights" not in clip["config"] and clip["weights_sha256"] == frame["weights_sha256"]
    assert frame["hop_seconds"] == 1.0 and frame["frame0_center_seconds"] == 0.5
