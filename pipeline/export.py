"""Export a trained student with its front end: waveform in, tag probabilities out."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pipeline.errors import ConfigError
from pipeline.files import write_rendered
from pipeline.runs import LoadedRun

if TYPE_CHECKING:
    import torch

FORMATS = ("onnx", "torchscript")


def _wrapped(run: LoadedRun) -> torch.nn.Module:
    import torch  # `pipeline export --help` (which reads FORMATS) stays free of torch

    class Tagger(torch.nn.Module):
        """(batch, samples) float32 waveform at the run's rate -> (batch, classes) probabilities."""

        def __init__(self) -> None:
            super().__init__()
            self.student = run.model

        def forward(self, waveform: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.student(waveform).logits)

    return Tagger().eval()


def export_run(run: LoadedRun, out: Path | str, *, fmt: str) -> Path:
    """Write ``run``'s student as ONNX or TorchScript to ``out``; returns the file.

    The exported graph takes (batch, samples) waveforms of the training length at
    ``run.sample_rate`` (the batch axis is dynamic) and returns sigmoid probabilities.
    """
    import torch

    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    model = _wrapped(run)
    example = torch.zeros(2, int(round(run.clip_seconds * run.sample_rate)))
    out = Path(out)

    def render(handle: BinaryIO) -> None:
        with torch.no_grad():
            if fmt == "torchscript":
                torch.jit.save(torch.jit.trace(model, example), handle)
            else:
                torch.onnx.export(  # the TorchScript exporter takes a binary file object too
                    model, (example,), handle,  # type: ignore[arg-type]
                    input_names=["waveform"], output_names=["probabilities"],
                    dynamic_axes={"waveform": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17,
                    dynamo=False,
                )

    write_rendered(out, render, what=f"the {fmt} export")  # a refusal is one line, no half file left
    return out
