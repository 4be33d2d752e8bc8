"""CP-ResNet and Mobile-FCN: parameter counts, shapes, frame times, minimum duration, export."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError, UnknownNameError
from pipeline.students import STUDENTS, CPResNet, CPResNetConfig, MobileFCN, MobileFCNConfig, build_student
from pipeline.students.base import StudentOutput

torch.set_num_threads(1)


# ---- parameter counts (the paper's students, the official code, checked against its checkpoint sizes) ----
def test_cp_resnet_parameter_counts() -> None:
    assert CPResNet(CPResNetConfig(rho=7, base_channels=128), n_classes=20).num_parameters() == 5_534_612
    assert CPResNet(CPResNetConfig(rho=3, base_channels=128), n_classes=20).num_parameters() == 3_830_676


def test_mobile_fcn_parameter_count() -> None:
    assert MobileFCN(MobileFCNConfig(n_mels=96), n_classes=50).num_parameters() == 314_098
    # the head is Linear(256, classes): 20 OpenMIC-style classes drop 30 * 257 parameters
    assert MobileFCN(MobileFCNConfig(), n_classes=20).num_parameters() == 314_098 - 30 * 257


def test_registry_and_build_student() -> None:
    assert set(STUDENTS.names()) >= {"cp_resnet", "mobile_fcn"}
    student = build_student("cp_resnet", {"base_channels": 8}, n_classes=20, sample_rate=16000)
    assert student.config.sample_rate == 16000 and student.config.rho == 7
    with pytest.raises(UnknownNameError, match="mobile_fcn"):
        build_student("resnet50", {}, n_classes=20, sample_rate=16000)
    with pytest.raises(ConfigError, match="'depth'.*valid keys"):
        build_student("mobile_fcn", {"depth": 3}, n_classes=20, sample_rate=16000)
    with pytest.raises(ConfigError, match="32000 Hz but the audio is at 16000 Hz"):
        build_student("mobile_fcn", {"sample_rate": 32000}, n_classes=20, sample_rate=16000)
    with pytest.raises(ConfigError, match="multiple of 32"):
        build_student("mobile_fcn", {"n_mels": 80}, n_classes=20, sample_rate=16000)


def test_cp_resnet_fixup_initialisation() -> None:
    model = CPResNet(CPResNetConfig(base_channels=16), n_classes=20)
    blocks = [m for m in model.modules() if m.__class__.__name__ == "BasicBlock"]
    assert len(blocks) == 12
    assert all(float(b.conv2.weight.detach().abs().sum()) == 0.0 for b in blocks)
    assert float(model.head.bias.detach().abs().sum()) == 0.0
    # conv1 std = L^-1/2 sqrt(2 / (k*k*C_out)) with L = 12 blocks
    conv1 = blocks[1].conv1  # 3x3, 16 -> 16
    expected = 12 ** -0.5 * np.sqrt(2.0 / (9 * 16))
    assert float(conv1.weight.detach().std()) == pytest.approx(expected, rel=0.15)


# ---- shapes for several input lengths ----------------------------------------------------------
@pytest.mark.parametrize("seconds", [3.0, 5.0, 7.3])
def test_mobile_fcn_shapes_at_demo_rate(seconds: float) -> None:
    student = build_student("mobile_fcn", {}, n_classes=20, sample_rate=16000).eval()
    n = int(seconds * 16000)
    with torch.no_grad():
        out = student(torch.randn(3, n) * 0.1)
    assert isinstance(out, StudentOutput)
    assert out.logits.shape == (3, 20)
    frames = student.num_feature_frames(n)
    assert [f.shape for f in out.features] == [(3, frames[0], 128), (3, frames[1], 256), (3, frames[2], 256)]
    assert min(frames) >= 1
    mel = 1 + (n - 1) // 320  # time pools 4, 3, 2, 2 (output_1), then 2 (output_2/3), floor mode
    assert frames[0] == mel // 4 // 3 // 2 // 2 and frames[2] == frames[0] // 2


def test_mobile_fcn_demo_clip_keeps_two_frames() -> None:
    student = build_student("mobile_fcn", {}, n_classes=20, sample_rate=16000, clip_seconds=5.0)
    assert student.num_feature_frames(80000) == [5, 2, 2]


@pytest.mark.parametrize("samples", [48000, 80000])
def test_cp_resnet_shapes_at_16k(samples: int) -> None:
    settings = {"base_channels": 8, "n_mels": 64}
    student = build_student("cp_resnet", settings, n_classes=20, sample_rate=16000).eval()
    with torch.no_grad():
        out = student(torch.randn(2, samples) * 0.1)
    mel = 1 + (samples - 1) // 320
    t = (mel + 1) // 2 // 2 // 2 // 2  # stem: (mel + 4 - 5) // 2 + 1, then three 2x pools
    assert out.logits.shape == (2, 20)
    assert [tuple(f.shape) for f in out.features] == [(2, t, 8), (2, t, 16), (2, t, 32)]


def test_cp_resnet_paper_geometry() -> None:
    """OpenMIC: 10 s at 32 kHz -> 1000 mel frames -> 62 feature frames of 0.16 s."""
    student = CPResNet(CPResNetConfig(base_channels=4), n_classes=20)
    assert student.num_feature_frames(320000) == [62, 62, 62]
    assert student.frame_hop_seconds == [0.16, 0.16, 0.16]


# ---- frame times -----------------------------------------------------------------------------------
def test_frame_times_exact_arithmetic() -> None:
    # Mobile-FCN: pools 4, 3, 2, 2 map output_1 frame t to mel frames [48t, 48t + 48): center 48t + 23.5;
    # output_2/3 pool 2 more: center 96t + 47.5. Mel frame m is centered at sample 320 m + 0.5.
    fcn = build_student("mobile_fcn", {}, n_classes=20, sample_rate=16000)
    assert fcn.frame_hop_seconds == pytest.approx([0.96, 1.92, 1.92], abs=1e-12)
    assert fcn.frame0_center_seconds == pytest.approx(
        [(23.5 * 320 + 0.5) / 16000, (47.5 * 320 + 0.5) / 16000, (47.5 * 320 + 0.5) / 16000], abs=1e-12)
    # CP-ResNet: the stem (k5, s2, p2) centers frame j on mel 2j; each 2x pool maps k to 2k + 0.5:
    # mel 4k + 1, 8k + 3, 16k + 7.
    cp = CPResNet(CPResNetConfig(base_channels=4), n_classes=20)
    assert cp.frame0_center_seconds == pytest.approx([(7 * 320 + 0.5) / 32000] * 3, abs=1e-12)
    features = [torch.zeros(1, 4, 4)] * 3
    out = StudentOutput(torch.zeros(1, 20), features, cp.frame_hop_seconds, cp.frame0_center_seconds)
    np.testing.assert_allclose(out.frame_times(2), (16 * np.arange(4) + 7) * 0.01 + 0.5 / 32000)


def _click_peaks(student, stage: int, seconds: float = 8.0) -> list[tuple[int, int]]:  # noqa: ANN001
    sr = student.config.sample_rate
    n = int(seconds * sr)
    base = torch.randn(1, n, generator=torch.Generator().manual_seed(0)) * 1e-3
    with torch.no_grad():
        reference = student(base).features[stage]
        hop, t0 = student.frame_hop_seconds[stage], student.frame0_center_seconds[stage]
        pairs = []
        for k in range(1, reference.shape[1] - 1, 3):
            x = base.clone()
            x[0, int(round((t0 + k * hop) * sr))] += 1.0
            change = (student(x).features[stage] - reference).abs().sum(dim=-1)[0]
            pairs.append((k, int(change.argmax())))
    return pairs


def test_a_click_moves_the_frame_centered_on_it_most() -> None:
    torch.manual_seed(0)
    cp = build_student("cp_resnet", {"base_channels": 8}, n_classes=5, sample_rate=16000).eval()
    for stage in range(3):
        for expected, got in _click_peaks(cp, stage):
            assert got == expected
    fcn = build_student("mobile_fcn", {}, n_classes=5, sample_rate=16000).eval()
    for expected, got in _click_peaks(fcn, 0):
        assert got == expected


# ---- minimum duration ---------------------------------------------------------------------------
def test_too_short_input_is_a_clear_config_error() -> None:
    fcn = build_student("mobile_fcn", {}, n_classes=20, sample_rate=16000).eval()
    # 96 mel frames are needed for one output_3 frame: (96 - 1) * 320 + 1 samples
    assert fcn.min_samples == 95 * 320 + 1
    with pytest.raises(ConfigError, match=r"at least 1\.900 s"):
        fcn(torch.zeros(1, fcn.min_samples - 1))
    assert fcn(torch.zeros(1, fcn.min_samples)).features[2].shape[1] == 1
    with pytest.raises(ConfigError, match="at least"):
        build_student("mobile_fcn", {}, n_classes=20, sample_rate=16000, clip_seconds=1.5)
    assert fcn.num_feature_frames(3 * 16000)[2] >= 1


# ---- training mode, gradients, export ------------------------------------------------------------
def test_training_step_reaches_every_layer() -> None:
    student = build_student("mobile_fcn", {"freqm": 24, "timem": 40}, n_classes=4, sample_rate=16000).train()
    out = student(torch.randn(4, 48000) * 0.1)
    (out.logits.sum() + sum(f.mean() for f in out.features)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in student.parameters())


@pytest.mark.parametrize("name,settings", [
    ("mobile_fcn", {}),
    ("cp_resnet", {"base_channels": 8, "n_mels": 64}),
])
def test_trace_and_onnx_export_take_a_waveform(name: str, settings: dict) -> None:
    import onnxruntime

    student = build_student(name, settings, n_classes=6, sample_rate=16000).eval()
    x = torch.randn(2, 48000, generator=torch.Generator().manual_seed(4)) * 0.1
    with torch.no_grad():
        expected = torch.sigmoid(student(x).logits)
        wrapper = student.export_module(probabilities=True)
        assert torch.allclose(wrapper(x), expected, atol=1e-5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapper, x)
            assert torch.allclose(traced(x[:1]), expected[:1], atol=1e-5)  # other batch size
            buffer = io.BytesIO()
            torch.onnx.export(wrapper, (x,), buffer, input_names=["waveform"], output_names=["probabilities"],
                              dynamic_axes={"waveform": {0: "batch"}}, opset_version=17, dynamo=False)
    session = onnxruntime.InferenceSession(buffer.getvalue())
    got = session.run(None, {"waveform": x.numpy()})[0]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)


def test_state_dict_holds_weights_only() -> None:
    student = build_student("mobile_fcn", {}, n_classes=20, sample_rate=16000)
    keys = student.state_dict().keys()
    assert not any(k.startswith("frontend.") for k in keys)  # mel banks, windows are rebuilt from the config
    twin = build_student("mobile_fcn", {}, n_classes=20, sample_rate=16000)
    twin.load_state_dict(student.state_dict())


def test_onnx_export_of_the_plain_forward_switches_to_the_real_valued_stft() -> None:
    """ONNX export of ``sigmoid(student(x).logits)`` works without export_module (no complex ops)."""
    import onnxruntime

    student = build_student("mobile_fcn", {}, n_classes=3, sample_rate=16000).eval()

    class Tagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.student = student

        def forward(self, waveform: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.student(waveform).logits)

    x = torch.randn(1, 40000, generator=torch.Generator().manual_seed(5)) * 0.1
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Tagger().eval(), (x,), buffer, input_names=["waveform"], opset_version=17,
                          dynamo=False)
        expected = Tagger().eval()(x).numpy()
    assert student.frontend.stft_mode == "fft"  # the model itself is unchanged
    got = onnxruntime.InferenceSession(buffer.getvalue()).run(None, {"waveform": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
