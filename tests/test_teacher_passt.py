"""PaSST teacher contract: geometry, weights handling, shapes and consistency (tiny random network)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipeline.errors import ConfigError, TeacherError, WeightsNotFoundError  # noqa: E402
from pipeline.teachers import TEACHERS, build_teacher, passt_net  # noqa: E402
from pipeline.teachers.passt import CHECKPOINT_NAME, PasstConfig, PasstTeacher  # noqa: E402

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 4, "num_classes": 527}
SR = 32000


class TinyPasst(PasstTeacher):
    architecture = TINY


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    torch.manual_seed(0)
    net = passt_net.PaSST(**TINY)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.05 * torch.randn_like(param))
    path = tmp_path_factory.mktemp("passt") / CHECKPOINT_NAME
    torch.save(net.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def teacher(weights) -> PasstTeacher:
    torch.set_num_threads(1)
    return TinyPasst(PasstConfig(weights=weights)).load("cpu")


def _audio(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal(int(round(seconds * SR)))).astype(np.float32)


def test_registered_with_paper_geometry() -> None:
    teacher = build_teacher("passt", {})
    assert TEACHERS.get("passt") is PasstTeacher
    assert (teacher.sample_rate, teacher.embedding_dim) == (32000, 768)
    assert teacher.hop_seconds == pytest.approx(0.96)
    assert teacher.window_seconds == pytest.approx(0.96)
    assert teacher.frame0_center_seconds == 0.0  # reflect/zero-padded by half a window: centered at k * 0.96 s
    # Paper section 2: 11 frames for an OpenMIC 10 s clip, 31 for an MTT 29.1 s clip.
    assert teacher.num_frames(10 * SR) == 11
    assert teacher.num_frames(int(29.1 * SR)) == 31
    np.testing.assert_allclose(teacher.frame_times(3), [0.0, 0.96, 1.92])


@pytest.mark.parametrize("n_samples", [1, 15360, 30719, 30720, 30721, 10 * SR])
def test_frame_centers_lie_inside_the_track(n_samples: int) -> None:
    teacher = build_teacher("passt", {})
    times = teacher.frame_times(teacher.num_frames(n_samples))
    assert times[-1] <= n_samples / SR + 1e-9  # hear21passt counts a center on the last sample boundary too
    assert times[-1] + teacher.hop_seconds > n_samples / SR  # no center inside the track is missed


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="window_seconds"):
        build_teacher("passt", {"window_seconds": 12.0})
    with pytest.raises(ConfigError, match="hop_seconds"):
        build_teacher("passt", {"hop_seconds": 0.0})
    with pytest.raises(ConfigError, match="unknown key"):
        build_teacher("passt", {"layer": "x"})


def test_missing_weights_error_says_where_they_come_from(tmp_path) -> None:
    teacher = build_teacher("passt", {"weights": str(tmp_path / "nope.pt")})
    assert not teacher.weights_available()
    with pytest.raises(WeightsNotFoundError) as info:
        teacher.load()
    message = str(info.value)
    assert "nope.pt" in message and CHECKPOINT_NAME in message and "teachers.passt.weights" in message
    assert "\n" not in message


def test_default_weights_location_is_the_torch_hub_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert build_teacher("passt", {}).weight_files() == [tmp_path / "hub" / "checkpoints" / CHECKPOINT_NAME]
    folder = tmp_path / "w"
    folder.mkdir()
    assert build_teacher("passt", {"weights": str(folder)}).weight_files() == [folder / CHECKPOINT_NAME]


def test_wrong_checkpoint_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    torch.save({"patch_embed.proj.weight": torch.zeros(3, 1, 16, 16)}, bad)
    with pytest.raises(TeacherError, match=r"missing \(\d+\): blocks"):
        TinyPasst(PasstConfig(weights=str(bad))).load()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(TeacherError, match="cannot read PaSST checkpoint"):
        TinyPasst(PasstConfig(weights=str(junk))).load()


def test_checkpoint_wrapped_in_model_key_loads(tmp_path, weights) -> None:
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": torch.load(weights, weights_only=True)}, wrapped)
    teacher = TinyPasst(PasstConfig(weights=str(wrapped))).load()
    window = _audio(0.96, 9)[None]
    reference = TinyPasst(PasstConfig(weights=weights)).load()
    np.testing.assert_array_equal(teacher.embed_windows(window), reference.embed_windows(window))


def test_embed_shapes_and_times(teacher) -> None:
    audio = np.stack([_audio(3.0, 0), _audio(3.0, 1)])
    out = teacher.embed(audio)
    assert out.shape == (2, teacher.num_frames(3 * SR), 32) == (2, 4, 32)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert not np.allclose(out[0], out[1])


def test_batch_equals_single_clips(teacher) -> None:
    audio = np.stack([_audio(2.5, 2), _audio(2.5, 3), np.zeros(int(2.5 * SR), np.float32)])
    batch = teacher.embed(audio)
    for row in range(3):
        np.testing.assert_allclose(batch[row], teacher.embed(audio[row])[0], rtol=1e-5, atol=1e-5)


def test_blocks_of_a_long_file_give_the_same_frames(teacher) -> None:
    """Stage one cuts windows from blocks of a long track; frames equal those of embed()."""
    audio = _audio(5.0, 4)
    whole = teacher.embed(audio)[0]
    grid = teacher.grid
    n = grid.num_windows(audio.size)
    lo, hi = grid.block_span(2, n - 2, audio.size)
    tail = teacher.embed_windows(grid.cut(audio[lo:hi], 2, n - 2, offset=lo))[:, 0]
    np.testing.assert_allclose(tail, whole[2:], rtol=1e-5, atol=1e-5)


def test_silence_and_very_short_input(teacher) -> None:
    silent = teacher.embed(np.zeros((1, SR), np.float32))
    assert silent.shape == (1, 2, 32) and np.isfinite(silent).all()
    for n in (1, 100, 15000):  # hear21passt's reflect padding fails below half a window; zeros do not
        out = teacher.embed(_audio(n / SR, 5)[None])
        assert out.shape == (1, 1, 32) and np.isfinite(out).all()


def test_embed_windows_checks_its_input(teacher, weights) -> None:
    with pytest.raises(TeacherError, match="30720"):
        teacher.embed_windows(np.zeros((2, 1000), np.float32))
    with pytest.raises(TeacherError, match="load"):
        TinyPasst(PasstConfig(weights=weights)).embed_windows(np.zeros((1, 30720), np.float32))


def test_describe_records_geometry_and_weights(teacher, weights) -> None:
    info = teacher.describe()
    assert info["name"] == "passt" and info["dim"] == 32 and info["sample_rate"] == SR
    assert "weights" not in info["config"] and info["config"]["window_seconds"] == 0.96
    assert len(info["weights_sha256"]) == 64
    assert info["frame0_center_seconds"] == 0.0 and not info["clip_level"]
