"""Export a trained student as a clip tagger: a waveform of any length in, what ``pipeline predict``
prints out.

The exported graph holds the whole of :func:`pipeline.students.trained.predict_audio`: the log-mel front end,
the zero-padding of audio shorter than the training length, the sliding windows over longer
audio (:mod:`pipeline.windows`), the student on every window and the mean of the windows'
sigmoid probabilities. Input ``waveform``: float32 ``(batch, samples)`` mono at the run's sample
rate, both axes dynamic (the rows of a batch share one length); output ``probabilities``: float32
``(batch, classes)``. All windows of a call run as one batch, so memory grows with the length
(onnxruntime, default Mobile-FCN at 16 kHz: 0.24 GB for 1 min, 2.3 GB for 10 min): score hours-long files in
pieces of some minutes and average the pieces' windows yourself, or use ``pipeline predict``.

The file carries the class names, sample rate, window geometry and the run's provenance (ONNX
``metadata_props``; TorchScript ``_extra_files["metadata.json"]``): :func:`export_metadata`.
"""
from __future__ import annotations

import hashlib
import json
import warnings
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from pipeline import __version__
from pipeline.errors import ConfigError
from pipeline.files import fs_faults, replace_atomically
from pipeline.students.trained import LoadedRun
from pipeline.windows import HOP_FRACTION, hop_samples

if TYPE_CHECKING:
    import torch

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".ts"}
METADATA_FILE = "metadata.json"  # the TorchScript extra file holding export_metadata()
#: warnings torch prints on every good export; everything else still shows
_EXPORT_NOISE = (
    r"`torch\.jit\.trace(_method)?` is deprecated",
    r"You are using the legacy TorchScript-based ONNX export",
    r"The feature will be removed\. Please remove usage of this function",
    r"`torch\.jit\.save` is deprecated",
    r"`torch\.jit\.script` is deprecated",
    r"`torch\.jit\.load` is deprecated",
    # the exporter notes a strided slice it leaves unfolded: a note, not an error
    r"Constant folding - Only steps=1 can be constant folded",
)


def default_export_path(run: LoadedRun, fmt: str, root: Path | str = "exports") -> Path:
    """``exports/<run folder name>/model.onnx`` (or ``model.ts``): outside the DVC-tracked run folder."""
    return Path(root) / run.path.name / f"model{SUFFIXES[fmt]}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_metadata(run: LoadedRun, *, checkpoint: str = "best.pt") -> dict[str, str]:
    """What an exported file says about itself: string keys and values (ONNX ``metadata_props``).

    Keys: ``classes`` (JSON list, output column order), ``sample_rate`` (Hz), ``window_samples``
    and ``hop_samples`` (the sliding-window geometry), ``input``/``output`` (shapes in words),
    ``run`` (folder name), ``student``, ``variant``, ``teachers`` (JSON list of names),
    ``seed``, ``checkpoint_sha256`` and ``config_sha256`` (of the run's files),
    ``pipeline_version``, ``torch_version``.
    """
    import torch

    length = int(round(run.clip_seconds * run.sample_rate))
    teachers = run.config.teacher_names
    return {
        "classes": json.dumps(run.classes),
        "sample_rate": str(run.sample_rate),
        "window_samples": str(length),
        "hop_samples": str(hop_samples(length)),
        "input": "waveform: float32 (batch, samples), mono, any length >= 1 sample, at sample_rate Hz",
        "output": "probabilities: float32 (batch, classes), sigmoid, mean over sliding windows as `pipeline predict`",
        "run": run.path.name,
        "student": str(run.config.student),
        "variant": str(run.config.variant),
        "teachers": json.dumps(teachers),
        "seed": str(run.config.seed),
        "checkpoint_sha256": _sha256(run.path / checkpoint),
        "config_sha256": _sha256(run.path / "config.json"),
        "pipeline_version": __version__,
        "torch_version": torch.__version__,
    }


def _scripted_windowing() -> tuple[Any, Any]:
    """The two length-dependent steps, scripted so the tracer records them with dynamic sizes:
    ``chunks`` cuts the zero-padded waveform into hop-long chunks, ``add_tail`` appends the window
    ending at the last sample when the regular windows stop short of it (an ONNX ``If``)."""
    import torch
    import torch.nn.functional as F

    def chunks(waveform: torch.Tensor, length: int, hop: int, span: int) -> torch.Tensor:
        n = waveform.size(1)
        regular = (max(n, length) - length) // hop + 1
        padded = F.pad(waveform, [0, (regular - 1 + span) * hop - n])
        return padded.reshape(waveform.size(0), regular - 1 + span, hop)

    def add_tail(windows: torch.Tensor, waveform: torch.Tensor, length: int, hop: int) -> torch.Tensor:
        n = waveform.size(1)
        if (windows.size(1) - 1) * hop + length < n:
            windows = torch.cat([windows, waveform[:, n - length:].unsqueeze(1)], dim=1)
        return windows

    with quiet_torch_export():
        return torch.jit.script(chunks), torch.jit.script(add_tail)


def _tagger(run: LoadedRun, *, hop_fraction: float = HOP_FRACTION) -> torch.nn.Module:
    """The run's student inside :mod:`pipeline.windows`' policy, as a traceable module."""
    import torch

    length = int(round(run.clip_seconds * run.sample_rate))
    hop = hop_samples(length, hop_fraction)
    chunks, add_tail = _scripted_windowing()

    class ClipTagger(torch.nn.Module):
        """(batch, samples) float32 waveform at the run's rate -> (batch, classes) clip probabilities.

        A regular window is ``span`` consecutive hop-long chunks of the zero-padded waveform cut to
        ``length`` samples; the window ending at the last sample is added when needed; the student
        scores every window and the probabilities are averaged, as ``pipeline predict``.
        """
        def __init__(self) -> None:
            super().__init__()
            self.student = run.model
            self.span = -(-length // hop)

        def forward(self, waveform: torch.Tensor) -> torch.Tensor:
            cut = chunks(waveform, length, hop, self.span)
            last = self.span - 1  # regular windows start at chunks 0 .. chunks - span
            parts = [cut[:, j : (j - last if j < last else None)] for j in range(self.span)]
            windows = add_tail(torch.cat(parts, dim=2)[:, :, :length], waveform, length, hop)
            batch, count = windows.shape[0], windows.shape[1]
            logits = self.student.forward_tensors(windows.reshape(batch * count, length))[0]
            return torch.sigmoid(logits).reshape(batch, count, -1).mean(dim=1)

    return ClipTagger().eval()


@contextmanager
def quiet_torch_export() -> Iterator[None]:
    """Silence the warnings torch prints on every good export (tracer warnings and the deprecation
    notes of ``torch.jit.trace`` and the TorchScript-based ONNX exporter); any other warning shows."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        for pattern in _EXPORT_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        yield


@dataclass
class Exported:
    """A written export.

    Attributes:
        path: the file.
        format: ``onnx`` or ``torchscript``.
        metadata: what the file carries (:func:`export_metadata`).
    """

    path: Path
    format: str
    metadata: dict[str, str]


def _write_onnx(model: torch.nn.Module, example: torch.Tensor, out: Path, metadata: dict[str, str]) -> None:
    import onnx
    import torch

    torch.onnx.export(
        model, (example,), str(out), input_names=["waveform"], output_names=["probabilities"],
        dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "probabilities": {0: "batch"}},
        opset_version=17, dynamo=False,
    )
    graph = onnx.load(str(out))
    onnx.helper.set_model_props(graph, metadata)
    onnx.save(graph, str(out))


def _write_torchscript(model: torch.nn.Module, example: torch.Tensor, out: Path,
                       metadata: dict[str, str]) -> None:
    import torch

    traced = torch.jit.trace(model, example, check_trace=False)
    torch.jit.save(traced, str(out), _extra_files={METADATA_FILE: json.dumps(metadata, indent=1)})


def export_run(run: LoadedRun, out: Path | str, *, fmt: str) -> Exported:
    """Write ``run``'s student as an ONNX or TorchScript clip tagger (see the module docstring).

    Args:
        run: a loaded run.
        out: the file to write (its folder is created).
        fmt: one of :data:`FORMATS`.

    Returns:
        :class:`Exported`.

    Raises:
        ConfigError: an unknown format.
    """
    import torch

    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    example = torch.zeros(1, int(round(run.clip_seconds * run.sample_rate)) + 1)
    out = Path(out)
    metadata = export_metadata(run)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # written whole, then renamed: never a half file
    try:
        with fs_faults(out, doing=f"writing the {fmt} export", kept="nothing was exported; the run is untouched"):
            out.parent.mkdir(parents=True, exist_ok=True)
            with torch.no_grad(), quiet_torch_export():
                model = _tagger(run)
                if fmt == "torchscript":
                    _write_torchscript(model, example, tmp, metadata)
                else:
                    _write_onnx(model, example, tmp, metadata)
            replace_atomically(out, tmp.read_bytes())  # fsync'd, renamed; the exporters write through Python files
    finally:
        tmp.unlink(missing_ok=True)
    return Exported(out, fmt, metadata)


def read_metadata(path: Path | str) -> dict[str, str]:
    """The :func:`export_metadata` an exported file carries (``.onnx``, else TorchScript)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    import torch

    files = {METADATA_FILE: ""}
    with quiet_torch_export():
        torch.jit.load(str(path), _extra_files=files)
    return json.loads(files[METADATA_FILE])
