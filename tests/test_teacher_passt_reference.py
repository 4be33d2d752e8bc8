"""PaSST teacher == hear21passt 0.0.26 (the original package), on random weights in the release layout.

Needs ``pip install --no-deps hear21passt==0.0.26`` (pure Python); skipped without it.
hear21passt imports two things that cannot run here, neither on the path we compare:
``timm.models._hub.download_cached_file`` (pretrained download; we build with
``pretrained=False``) and ``torchaudio`` (PyPI has only CUDA builds that fail to import
beside torch+cpu). When they are missing they are replaced by stand-ins: the download
function raises, the train-time masking transforms are never called in eval mode, and
``torchaudio.compliance.kaldi.get_mel_banks`` is served by our own Kaldi filters, which
:func:`test_kaldi_mel_banks_match_torchaudio` compares with torchaudio's wherever
torchaudio imports.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipeline.teachers import passt_net  # noqa: E402
from pipeline.teachers.passt import CHECKPOINT_NAME, PasstConfig, PasstTeacher  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("hear21passt") is None,
        reason="hear21passt not installed (pip install --no-deps hear21passt==0.0.26)",
    ),
    # the original code's own deprecation and shape notices
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

TINY = {"embed_dim": 64, "depth": 2, "num_heads": 4, "num_classes": 527}
SR = 32000
WINDOW = 30720  # 0.96 s


def _torchaudio_or_none() -> object | None:
    try:
        return importlib.import_module("torchaudio")
    except (ImportError, OSError):
        return None


def _stand_ins() -> dict[str, types.ModuleType]:
    """Modules to put in sys.modules for the imports hear21passt cannot satisfy here."""
    mods: dict[str, types.ModuleType] = {}
    try:
        importlib.import_module("timm.models._hub")
    except Exception:  # noqa: BLE001 - timm missing or its torchvision import failing
        hub = types.ModuleType("timm.models._hub")

        def download_cached_file(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("hear21passt tried to download weights in a test")

        hub.download_cached_file = download_cached_file  # type: ignore[attr-defined]
        models = types.ModuleType("timm.models")
        models._hub = hub  # type: ignore[attr-defined]
        timm = types.ModuleType("timm")
        timm.models = models  # type: ignore[attr-defined]
        mods.update({"timm": timm, "timm.models": models, "timm.models._hub": hub})
    if _torchaudio_or_none() is None:
        class _TrainOnly(torch.nn.Module):  # masking is applied only in training mode
            def __init__(self, *_args: object, **_kwargs: object) -> None:
                super().__init__()

            def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
                raise AssertionError("train-time masking called in eval mode")

        def get_mel_banks(n_mels, n_fft, sr, fmin, fmax,  # noqa: ANN001, ANN202
                          vtln_low, vtln_high, vtln_warp_factor):
            assert vtln_warp_factor == 1.0  # no warping: vtln_low/high play no part
            banks = passt_net.kaldi_mel_banks(n_mels, n_fft, sr, fmin, fmax)[:, :-1]
            return torch.from_numpy(banks), None

        audio = types.ModuleType("torchaudio")
        transforms = types.ModuleType("torchaudio.transforms")
        transforms.FrequencyMasking = _TrainOnly  # type: ignore[attr-defined]
        transforms.TimeMasking = _TrainOnly  # type: ignore[attr-defined]
        compliance = types.ModuleType("torchaudio.compliance")
        kaldi = types.ModuleType("torchaudio.compliance.kaldi")
        kaldi.get_mel_banks = get_mel_banks  # type: ignore[attr-defined]
        compliance.kaldi = kaldi  # type: ignore[attr-defined]
        audio.transforms, audio.compliance = transforms, compliance  # type: ignore[attr-defined]
        mods.update({"torchaudio": audio, "torchaudio.transforms": transforms,
                     "torchaudio.compliance": compliance, "torchaudio.compliance.kaldi": kaldi})
    return mods


@pytest.fixture(scope="module")
def original() -> types.SimpleNamespace:
    """hear21passt's modules imported with stand-ins; then stand-ins and hear21passt leave sys.modules.

    Real modules imported on the way (numpy/torch extensions) stay: they cannot be loaded twice.
    """
    stand_ins = _stand_ins()
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        ns = types.SimpleNamespace(
            passt=importlib.import_module("hear21passt.models.passt"),
            preprocess=importlib.import_module("hear21passt.models.preprocess"),
            wrapper=importlib.import_module("hear21passt.wrapper"),
            own_mel_banks="torchaudio" in stand_ins,
        )
    finally:
        for name in [n for n in sys.modules if n == "hear21passt" or n.startswith("hear21passt.")]:
            del sys.modules[name]
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return ns


def _randomise(net: torch.nn.Module, seed: int) -> None:
    """Every parameter random (LayerNorm scales near 1), so no term can hide."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if param.ndim == 1 and "norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.05 * noise)


@pytest.fixture(scope="module")
def pair(original, tmp_path_factory) -> tuple[torch.nn.Module, PasstTeacher]:
    """(original wrapper in embed_only mode, our teacher) sharing one random tiny checkpoint."""
    torch.manual_seed(0)
    net = original.passt.PaSST(img_size=(128, 998), patch_size=16, stride=10, in_chans=1,
                               distilled=True, **TINY)
    _randomise(net, 1)
    path = tmp_path_factory.mktemp("passt") / CHECKPOINT_NAME
    torch.save(net.state_dict(), path)  # the release file is a plain state dict
    mel = original.preprocess.AugmentMelSTFT(
        n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192,
        htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000)
    wrapper = original.wrapper.PasstBasicWrapper(mel=mel, net=net, mode="embed_only",
                                                 timestamp_window=960, timestamp_hop=960).eval()

    class Tiny(PasstTeacher):
        architecture = TINY

    teacher = Tiny(PasstConfig(weights=str(path))).load("cpu")
    return wrapper, teacher


def _music(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220.0, 660.0, 1500.0, 5100.0), 1))
    return (0.3 * tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_front_end_matches_augment_mel_stft(pair) -> None:
    wrapper, teacher = pair
    audio = torch.from_numpy(np.stack([_music(0.96, 0), _music(0.96, 1)]))
    with torch.no_grad():
        ref = wrapper.mel(audio).numpy()
    ours = teacher._mel(audio).numpy()
    assert ours.shape == ref.shape == (2, 128, 96)
    assert _rel(ours, ref) <= 1e-5


def test_windows_match_original_forward(pair) -> None:
    wrapper, teacher = pair
    windows = np.stack([_music(0.96, 2), _music(0.96, 3), np.zeros(WINDOW, np.float32)])
    with torch.no_grad():
        ref = wrapper(torch.from_numpy(windows)).numpy()
    ours = teacher.embed_windows(windows)[:, 0]
    assert ours.shape == ref.shape == (3, 64)
    assert _rel(ours, ref) <= 1e-4


def test_timestamp_embeddings_match_inside_the_clip(pair) -> None:
    """Same frame count and times as get_timestamp_embeddings; equal frames away from the edges."""
    wrapper, teacher = pair
    audio = _music(4.3, 4)
    with torch.no_grad():  # as hear21passt.base.get_timestamp_embeddings does
        ref, stamps_ms = wrapper.get_timestamp_embeddings(torch.from_numpy(audio[None]))
    ref, stamps = ref.numpy()[0], stamps_ms.numpy()[0] / 1000.0
    ours = teacher.embed(audio[None])[0]
    assert ours.shape == ref.shape == (teacher.num_frames(audio.size), 64)
    np.testing.assert_allclose(teacher.frame_times(len(ours)), stamps, atol=1e-6)
    half = WINDOW // 2
    inside = [k for k in range(len(ours)) if k * WINDOW - half >= 0 and k * WINDOW + half <= audio.size]
    assert inside == [1, 2, 3]
    assert _rel(ours[inside], ref[inside]) <= 1e-4
    # The edge frames differ only through reflect (original) vs zero (ours) padding.
    assert _rel(ours[0], ref[0]) > 1e-3


@pytest.mark.parametrize("seconds", [10.0, 29.1, 0.96, 1.45, 1.43])
def test_frame_count_matches_hear21passt(pair, seconds: float) -> None:
    """1 + n // hop frames (11 for 10 s, 31 for 29.1 s: paper section 2)."""
    _wrapper, teacher = pair
    n = int(round(seconds * SR))
    padded = torch.nn.functional.pad(torch.zeros(1, 1, n), (WINDOW // 2, WINDOW // 2))
    expected = torch.nn.functional.unfold(padded.unsqueeze(1), (1, WINDOW), stride=(1, WINDOW)).shape[-1]
    assert teacher.num_frames(n) == expected
    assert {10.0: 11, 29.1: 31}.get(seconds, expected) == expected


def test_kaldi_mel_banks_match_torchaudio() -> None:
    torchaudio = _torchaudio_or_none()
    if torchaudio is None:
        pytest.skip("torchaudio does not import here (PyPI builds are CUDA-only for this torch)")
    from torchaudio.compliance import kaldi

    ref, _ = kaldi.get_mel_banks(128, 1024, 32000.0, 0.0, 15000.0, 100.0, -500.0, 1.0)
    ours = passt_net.kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0)
    np.testing.assert_allclose(ours[:, :-1], ref.numpy(), atol=1e-6)
    assert not ours[:, -1].any()


def test_full_architecture_matches_original_layout_and_output(original) -> None:
    """The real PaSST-S: same state-dict keys and shapes, same embedding on one window."""
    torch.manual_seed(0)
    ref_net = original.passt.get_model(arch="passt_s_swa_p16_128_ap476", pretrained=False,
                                       fstride=10, tstride=10).eval()
    ours = passt_net.PaSST()
    ref_state = ref_net.state_dict()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in ref_state.items()}
    assert 85_000_000 < passt_net.count_parameters(ours) < 88_000_000
    passt_net.load_weights(ours, ref_state, CHECKPOINT_NAME)  # type: ignore[arg-type]
    mel = passt_net.PasstMel()(torch.from_numpy(_music(0.96, 5)[None]))
    with torch.no_grad():
        ref_logits, ref_emb = ref_net(mel.unsqueeze(1))
        logits, emb = ours.eval()(mel)
    assert emb.shape == (1, 768)
    assert _rel(emb.numpy(), ref_emb.numpy()) <= 1e-4
    assert _rel(logits.numpy(), ref_logits.numpy()) <= 1e-4
