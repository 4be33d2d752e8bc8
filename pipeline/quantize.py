"""int8 ONNX clip taggers with onnxruntime's own quantisation tools.

Two methods (``onnxruntime.quantization``):

- ``static`` (the default): weights int8 per output channel, activations uint8 with ranges
  calibrated on training clips run through the float32 graph (MinMax), written as QDQ pairs that
  onnxruntime fuses into integer convolutions;
- ``dynamic``: weights int8, activation ranges computed per call (ConvInteger / MatMulInteger),
  no calibration data.

Both leave the log-mel front end in float32 (its STFT-as-convolution and mel matrix feed a
``log``, where int8 error on weak bins becomes large) and quantise the student's convolutions
and its head. The windowing around them is unchanged, so an int8 file takes any length too.
``benchmarks/bench_export.py`` measured both; the README has the figures and why static is the
default.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from pipeline.errors import ConfigError, PipelineError, TrainingError
from pipeline.manifests import label_arrays, load_split
from pipeline.run_config import RunConfig

Method = Literal["static", "dynamic"]
METHODS: tuple[str, ...] = ("static", "dynamic")
#: node-name part of the front end's nodes in an exported graph (kept float32)
FRONTEND_SCOPE = "/frontend/"
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]


def frontend_nodes(model_path: Path | str) -> list[str]:
    """Names of the nodes of the exported graph that belong to the log-mel front end."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    return [node.name for node in graph.node if FRONTEND_SCOPE in node.name]


class _ClipReader:
    """``CalibrationDataReader`` over waveforms: one ``{"waveform": (1, samples)}`` feed per clip."""

    def __init__(self, clips: Iterable[np.ndarray]) -> None:
        self._feeds = iter([{"waveform": np.asarray(c, dtype=np.float32)[None]} for c in clips])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_int8(float_path: Path | str, out: Path | str, *, method: str = "static",
                  calibration: Sequence[np.ndarray] | None = None) -> Path:
    """Write an int8 copy of the exported float32 ONNX tagger ``float_path`` to ``out``.

    Args:
        float_path: an ONNX file written by :func:`pipeline.export.export_run`.
        out: the int8 file to write.
        method: ``static`` or ``dynamic`` (module docstring).
        calibration: for ``static``, float32 (samples,) training waveforms at the run's rate
            (a few dozen are enough; each runs once through the float32 graph).

    Returns:
        ``out`` as a Path. The ONNX metadata of ``float_path`` is kept, plus ``quantization``.

    Raises:
        ConfigError: an unknown method, or ``static`` without calibration clips.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)

    if method not in METHODS:
        raise ConfigError(f"quantisation method {method!r} is not one of {', '.join(METHODS)}")
    if method == "static" and not calibration:
        raise ConfigError("static int8 quantisation needs calibration clips (the run's training split); "
                          "none were found: pass the manifests, or use --quantize-method dynamic")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    exclude = frontend_nodes(float_path)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        _pre_process(float_path, prepared)
        if method == "dynamic":
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=QUANTIZED_OPS, nodes_to_exclude=exclude)
        else:
            quantize_static(str(prepared), str(out), _ClipReader(calibration or []), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=QUANTIZED_OPS, nodes_to_exclude=exclude,
                            calibrate_method=CalibrationMethod.MinMax)
    _copy_metadata(float_path, out, method)
    return out


def _pre_process(source: Path | str, target: Path) -> None:
    """onnxruntime's recommended pre-processing (shape inference, graph optimisation) before quantising.

    Its symbolic shape inference logs a warning that it cannot bound ``max(window, samples)``: true
    of a graph that takes any length, and harmless, so that one logger is silenced here.
    """
    import logging

    from onnxruntime.quantization.shape_inference import quant_pre_process

    shape_logger = logging.getLogger("onnxruntime.tools.symbolic_shape_infer")
    level = shape_logger.level
    shape_logger.setLevel(logging.ERROR)
    try:
        quant_pre_process(str(source), str(target))
    finally:
        shape_logger.setLevel(level)


def _copy_metadata(source: Path | str, target: Path, method: str) -> None:
    import onnx

    model = onnx.load(str(target))
    props = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    props["quantization"] = f"int8 {method} (onnxruntime {_ort_version()}), front end float32"
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(target))


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


@dataclass
class ClipSet:
    """Decoded clips of one split with their labels.

    Attributes:
        audio: float32 (samples,) waveforms at the run's rate.
        labels: (clips, classes) 0/1 targets.
        known: (clips, classes) bool, False where a label is unknown.
    """

    audio: list[np.ndarray]
    labels: np.ndarray
    known: np.ndarray


def run_clips(config: RunConfig, split: str, limit: int, sample_rate: int) -> ClipSet:
    """Up to ``limit`` decoded clips of ``split`` from the manifests a run was trained on.

    Args:
        config: the run's :class:`~pipeline.run_config.RunConfig` (its ``manifests`` and ``audio_root``).
        split: ``train``, ``valid`` or ``test``.
        limit: most clips (the first ones of the split, in manifest order).
        sample_rate: Hz to decode at.

    Returns:
        :class:`ClipSet`; empty when the manifests or the audio are not here (unreadable clips are
        left out).
    """
    from pipeline.audio import read_audio

    manifests, audio_root = config.manifests, config.audio_root
    found, audio = [], []
    if manifests and audio_root and (Path(manifests) / f"{split}.jsonl").is_file():
        for clip in load_split(manifests, split):
            try:
                audio.append(read_audio(clip.resolve(audio_root), sample_rate=sample_rate))
            except PipelineError:
                continue
            found.append(clip)
            if len(found) == limit:
                break
    labels, known = label_arrays(found) if found else (np.zeros((0, 0)), np.zeros((0, 0), dtype=bool))
    return ClipSet(audio, labels, known)


@dataclass
class Agreement:
    """int8 against float32 on the same clips, one thread each.

    Attributes:
        clips: clips compared.
        max_abs_diff: largest |p_int8 - p_float32| over clips and classes.
        mean_abs_diff: mean of the same.
        float_ms, int8_ms: median milliseconds per clip.
        float_map, int8_map: macro mAP over the clips' known labels (as ``pipeline evaluate``), or
            None when no class has both a positive and a negative known label.
    """

    clips: int
    max_abs_diff: float
    mean_abs_diff: float
    float_ms: float
    int8_ms: float
    float_map: float | None = None
    int8_map: float | None = None

    @property
    def speedup(self) -> float:
        """float32 time / int8 time."""
        return self.float_ms / self.int8_ms


def session(path: Path | str, threads: int = 1) -> Any:
    """A CPU ``onnxruntime.InferenceSession`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def timed_scores(model: Any, clips: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """``(probabilities (clips, classes), median ms per clip)`` of an onnxruntime session (one warm-up)."""
    import time

    model.run(None, {"waveform": clips[0][None]})
    rows, times = [], []
    for clip in clips:
        start = time.perf_counter()
        rows.append(model.run(None, {"waveform": clip[None]})[0][0])
        times.append(time.perf_counter() - start)
    return np.stack(rows), 1e3 * float(np.median(times))


def compare(float_path: Path | str, int8_path: Path | str, clips: ClipSet) -> Agreement:
    """Score ``clips`` with both files at one thread: :class:`Agreement`."""
    from pipeline.metrics import evaluate_predictions

    expected, float_ms = timed_scores(session(float_path), clips.audio)
    got, int8_ms = timed_scores(session(int8_path), clips.audio)
    diff = np.abs(got - expected)
    found = Agreement(len(clips.audio), float(diff.max()), float(diff.mean()), float_ms, int8_ms)
    try:
        found.float_map = evaluate_predictions(expected, clips.labels, clips.known).mAP
        found.int8_map = evaluate_predictions(got, clips.labels, clips.known).mAP
    except TrainingError:  # no class with both labels among these clips
        pass
    return found
