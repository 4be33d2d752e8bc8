"""PANNs teacher == panns_inference 0.1.1 ``Cnn14`` (the original code), on random weights.

Needs ``pip install --no-deps panns_inference==0.1.1 torchlibrosa==0.1.0`` (pure Python;
librosa and matplotlib are already dependencies here); skipped without them.
``import panns_inference`` would wget a label CSV (``panns_inference/config.py``), so only
``panns_inference.models`` is imported, under a bare parent package whose ``__init__`` is
not run. The checkpoint is written in the release format: ``{'iteration', 'model',
'sampler'}`` with numpy arrays in the sampler state.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipeline.teachers import panns_net  # noqa: E402
from pipeline.teachers.panns import CHECKPOINT_NAME, PannsConfig, PannsTeacher  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("panns_inference", "torchlibrosa")),
        reason="pip install --no-deps panns_inference==0.1.1 torchlibrosa==0.1.0",
    ),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]
SR = 32000


@pytest.fixture(scope="module")
def models() -> types.ModuleType:
    """``panns_inference.models`` without running ``panns_inference/__init__`` (no label download)."""
    spec = importlib.util.find_spec("panns_inference")
    saved = sys.modules.get("panns_inference")
    parent = types.ModuleType("panns_inference")
    parent.__path__ = list(spec.submodule_search_locations)  # type: ignore[union-attr]
    sys.modules["panns_inference"] = parent
    try:
        module = importlib.import_module("panns_inference.models")
    finally:  # only panns_inference leaves sys.modules (extension modules cannot load twice)
        for name in [n for n in sys.modules if n == "panns_inference" or n.startswith("panns_inference.")]:
            del sys.modules[name]
        if saved is not None:
            sys.modules["panns_inference"] = saved
    return module


def _randomise(net: torch.nn.Module, seed: int) -> None:
    """Random affine BN parameters and running statistics (bn0 at log-mel scale)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in net.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                size = module.num_features
                scale = 20.0 if name == "bn0" else 0.5
                center = -40.0 if name == "bn0" else 0.0
                module.running_mean.copy_(center + scale * torch.randn(size, generator=gen))
                module.running_var.copy_((scale**2) * (0.5 + torch.rand(size, generator=gen)))
                module.weight.copy_(1.0 + 0.2 * torch.randn(size, generator=gen))
                module.bias.copy_(0.1 * torch.randn(size, generator=gen))
        for linear in (net.fc1, net.fc_audioset):
            linear.bias.copy_(0.05 * torch.randn(linear.bias.shape, generator=gen))


@pytest.fixture(scope="module")
def pair(models, tmp_path_factory) -> tuple[torch.nn.Module, PannsTeacher]:
    """(original Cnn14 in eval mode, our loaded teacher) sharing one random full-size checkpoint."""
    torch.manual_seed(0)
    ref = models.Cnn14(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50,
                       fmax=14000, classes_num=527)
    _randomise(ref, 1)
    ref.eval()
    path = tmp_path_factory.mktemp("panns") / CHECKPOINT_NAME
    sampler = {"indexes": np.arange(10), "random_state": np.random.RandomState(0).get_state()}
    torch.save({"iteration": 660000, "model": ref.state_dict(), "sampler": sampler}, path)
    teacher = PannsTeacher(PannsConfig(weights=str(path))).load("cpu")
    return ref, teacher


def _music(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((110.0, 440.0, 1250.0, 3300.0), 1))
    audio = 0.3 * tone * (1 + np.sin(2 * np.pi * 1.5 * t)) + 0.02 * rng.standard_normal(t.size)
    return audio.astype(np.float32)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_front_end_buffers_equal_torchlibrosa(models) -> None:
    """Our freshly built STFT kernels and mel filters equal torchlibrosa's (not only the loaded ones)."""
    stft = models.Spectrogram(n_fft=1024, hop_length=320, win_length=1024, window="hann", center=True,
                              pad_mode="reflect", freeze_parameters=True).state_dict()
    mel = models.LogmelFilterBank(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000, ref=1.0,
                                  amin=1e-10, top_db=None, freeze_parameters=True).state_dict()
    ref = {f"spectrogram_extractor.{k}": v for k, v in stft.items()}
    ref.update({f"logmel_extractor.{k}": v for k, v in mel.items()})
    ours = panns_net.Cnn14(widths=(4, 4, 4, 4, 4, 4)).state_dict()
    assert len(ref) == 3
    for key, value in ref.items():
        assert ours[key].shape == value.shape
        np.testing.assert_allclose(ours[key].numpy(), value.numpy(), atol=2e-6)


def test_same_state_dict_layout(pair) -> None:
    ref, teacher = pair
    ours = teacher._net.state_dict()
    shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.items()} == shapes
    assert teacher.embedding_dim == 2048


def test_clip_embedding_matches_original(pair) -> None:
    """The 2048-d ``embedding`` of AudioTagging.inference (batch of clips), and the clip-wise output."""
    ref, teacher = pair
    audio = np.stack([_music(1.5, 0), _music(1.5, 1)])
    with torch.no_grad():
        out = ref(torch.from_numpy(audio), None)
    ours = teacher.embed(audio)
    assert ours.shape == (2, 1, 2048)
    assert _rel(ours[:, 0], out["embedding"].numpy()) <= 1e-4
    assert np.abs(ours).max() > 0  # a dead ReLU layer would make the comparison empty
    with torch.no_grad():
        clipwise = teacher._net(torch.from_numpy(audio))["clipwise_output"].numpy()
    assert _rel(clipwise, out["clipwise_output"].numpy()) <= 1e-4


def test_frame_level_windows_match_original_on_each_window(pair) -> None:
    ref, teacher = pair
    frame = PannsTeacher(PannsConfig(weights=teacher.config.weights, level="frame"))
    frame._net = teacher._net  # same loaded network, frame geometry
    audio = _music(3.0, 2)
    grid = frame.grid
    windows = grid.cut(audio, 0, grid.num_windows(audio.size))
    with torch.no_grad():
        expected = ref(torch.from_numpy(windows), None)["embedding"].numpy()
    ours = frame.embed(audio[None])[0]
    assert ours.shape == (3, 2048)
    assert _rel(ours, expected) <= 1e-4
