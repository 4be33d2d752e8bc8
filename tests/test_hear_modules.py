"""``pipeline.hear.*``: the teacher ports as HEAR 2021 API modules.

musicnn runs with its real weights; PaSST and PANNs with tiny random networks in the official
checkpoint formats (as their teacher tests do), VGGish with full-size random weights in the
torchvggish release format. Each passes the official ``hearvalidator`` and a test of the
spec's rules: shapes, float32, timestamps in milliseconds at the teacher's frame centers,
batch independence, scene = mean of timestamps.
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from pipeline.hear._api import HEAR_SAMPLE_RATES


def check_spec_rules(module_name: str, model_file_path: str = "") -> None:
    """The HEAR 2021 rules a module must follow, checked on 2.5 s of noise in a batch of 3."""
    module = importlib.import_module(module_name)
    model = module.load_model(model_file_path)
    assert model.sample_rate in HEAR_SAMPLE_RATES
    assert isinstance(model.timestamp_embedding_size, int) and isinstance(model.scene_embedding_size, int)
    audio = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (3, int(2.5 * model.sample_rate)))
                             .astype(np.float32))
    emb, stamps = module.get_timestamp_embeddings(audio, model)
    assert emb.dtype == torch.float32 and stamps.dtype == torch.float32
    assert emb.shape[0] == 3 and emb.shape[2] == model.timestamp_embedding_size and stamps.shape == emb.shape[:2]
    teacher = model.teacher
    np.testing.assert_allclose(stamps[0].numpy(), teacher.frame_times(emb.shape[1]) * 1000.0, rtol=1e-6)
    assert (stamps >= 0).all() and (stamps <= 2500.0 + 1000.0).all()  # milliseconds, around the clip
    if emb.shape[1] > 1:
        assert np.allclose(np.diff(stamps[0].numpy()), teacher.hop_seconds * 1000.0, atol=1e-3)
    alone, _ = module.get_timestamp_embeddings(audio[1:2], model)
    np.testing.assert_allclose(alone[0].numpy(), emb[1].numpy(), rtol=1e-4, atol=1e-5)  # batch independence
    scene = module.get_scene_embeddings(audio, model)
    assert scene.dtype == torch.float32 and scene.shape == (3, model.scene_embedding_size)
    np.testing.assert_allclose(scene.numpy(), emb.mean(dim=1).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="2-D"):
        module.get_timestamp_embeddings(audio[0], model)


def official_validator(module_name: str, model_file_path: str = "") -> None:
    validate = pytest.importorskip("hearvalidator.validate", reason="pip install hearvalidator --no-deps")
    validate.ValidateModel(module_name, model_file_path, device="cpu")()


def test_musicnn_module_is_the_teacher_and_passes_the_validator() -> None:
    check_spec_rules("pipeline.hear.musicnn")
    official_validator("pipeline.hear.musicnn")
    from pipeline.hear import musicnn
    from pipeline.teachers import build_teacher

    audio = np.random.default_rng(1).uniform(-0.5, 0.5, (1, 16000 * 7)).astype(np.float32)
    emb, stamps = musicnn.get_timestamp_embeddings(torch.from_numpy(audio), musicnn.load_model())
    teacher = build_teacher("musicnn").load("cpu")
    np.testing.assert_allclose(emb.numpy(), teacher.embed(audio), rtol=1e-6)
    np.testing.assert_allclose(stamps[0].numpy() / 1000.0, teacher.frame_times(emb.shape[1]), rtol=1e-6)


@pytest.fixture
def tiny_passt(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    from pipeline.teachers import passt_net
    from pipeline.teachers.passt import CHECKPOINT_NAME, PasstTeacher

    tiny = {"embed_dim": 32, "depth": 2, "num_heads": 4, "num_classes": 527}
    monkeypatch.setattr(PasstTeacher, "architecture", tiny)
    torch.manual_seed(0)
    path = tmp_path / CHECKPOINT_NAME
    torch.save(passt_net.PaSST(**tiny).state_dict(), path)
    return str(path)


@pytest.fixture
def tiny_panns(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    from pipeline.teachers import panns_net
    from pipeline.teachers.panns import CHECKPOINT_NAME, PannsTeacher

    tiny = {"widths": (4, 8, 8, 8, 8, 16), "num_classes": 527}
    monkeypatch.setattr(PannsTeacher, "architecture", tiny)
    torch.manual_seed(0)
    net = panns_net.Cnn14(**tiny)
    net.bn0.running_mean.fill_(-40.0)
    net.bn0.running_var.fill_(400.0)
    path = tmp_path / CHECKPOINT_NAME
    torch.save({"iteration": 0, "model": net.state_dict()}, path)
    return str(path)


def test_passt_module_resamples_48k_and_passes_the_validator(tiny_passt: str) -> None:
    check_spec_rules("pipeline.hear.passt", tiny_passt)
    official_validator("pipeline.hear.passt", tiny_passt)


def test_panns_module_frame_level_and_passes_the_validator(tiny_panns: str) -> None:
    check_spec_rules("pipeline.hear.panns", tiny_panns)
    official_validator("pipeline.hear.panns", tiny_panns)
    from pipeline.hear import panns

    assert panns.load_model(tiny_panns).teacher.config.level == "frame"


@pytest.mark.slow
def test_vggish_module_passes_the_validator(tmp_path) -> None:
    from pipeline.teachers.vggish_net import VGGishNet

    torch.manual_seed(0)
    torch.save(VGGishNet().eval().state_dict(), tmp_path / "vggish-10086976.pth")
    rng = np.random.default_rng(0)
    torch.save({"pca_eigen_vectors": np.linalg.qr(rng.normal(size=(128, 128)))[0], "pca_means": np.zeros(128)},
               tmp_path / "vggish_pca_params-970ea276.pth")
    check_spec_rules("pipeline.hear.vggish", str(tmp_path / "vggish-10086976.pth"))
    official_validator("pipeline.hear.vggish", str(tmp_path / "vggish-10086976.pth"))


@pytest.mark.slow
@pytest.mark.tf
def test_openl3_module_passes_the_validator(tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("tensorflow", reason="the official-format .h5 is written with tf-keras")
    from tests.fixtures_tf_teachers import reference_dir

    h5 = str(reference_dir(tmp_path_factory.getbasetemp()) / "openl3_audio_mel128_music.h5")
    check_spec_rules("pipeline.hear.openl3", h5)
    official_validator("pipeline.hear.openl3", h5)
