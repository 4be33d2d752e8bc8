"""The teacher's linear probe (paper section 4.7): Linear(dim, classes) on time-pooled frames.

It gives the teacher's own reference row (how well its embedding alone classifies) and,
frozen, the KD teacher of EAsT-KD. Input frames are z-scored with per-dimension statistics
of the training split, the same normalisation the training loader applies, so the probe
sees at training time exactly what it sees inside ``pipeline distill``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import TrainingError
from pipeline.files import write_rendered
from pipeline.losses import masked_bce
from pipeline.metrics import evaluate_predictions


class LinearProbe(torch.nn.Module):
    """``Linear(dim, classes)`` on z-scored frames, time-pooled when given ``(B, T, dim)``.

    Args:
        dim: embedding size.
        n_classes: output classes.
        mean, std: float32 ``(dim,)`` z-score statistics of the training frames; they travel with
            the module (``normalise`` applies them) so the loader can reproduce its input.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int, n_classes: int, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.linear = torch.nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim) pooled or (B, T, dim) z-scored frames -> (B, C) logits."""
        if x.dim() == 3:
            x = x.mean(dim=1)
        return self.linear(x)

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """Raw frames (..., dim) -> z-scored with the training statistics."""
        return (frames - self.mean) / self.std


def build_probe(dim: int, n_classes: int, mean: np.ndarray, std: np.ndarray) -> LinearProbe:
    """A :class:`LinearProbe` mapping z-scored pooled frames (B, dim) or frames (B, T, dim) to logits (B, C)."""
    return LinearProbe(dim, n_classes, mean, std)


@dataclass
class ProbeFit:
    """Chosen hyper-parameters and the validation score they reached."""

    weight_decay: float
    steps: int
    valid_map: float


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    known_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    known_valid: np.ndarray,
    *,
    mean: np.ndarray,
    std: np.ndarray,
    lr: float,
    steps: int,
    weight_decays: tuple[float, ...],
    seed: int,
) -> tuple[LinearProbe, ProbeFit]:
    """Full-batch Adam on the masked BCE; weight decay and step count picked on validation mAP.

    Args:
        x_train, x_valid: pooled, already z-scored embeddings, float32 (n, dim).
        y_*: labels float32 (n, C); known_*: bool (n, C).
        mean, std: the z-score statistics, stored in the returned module.

    Returns:
        (probe module with the best weights, :class:`ProbeFit`).
    """
    if len(x_train) == 0 or len(x_valid) == 0:
        raise TrainingError("the probe needs train and valid clips; the manifests have none")
    xt, yt, kt = (torch.as_tensor(a) for a in (x_train, y_train, known_train))
    xv = torch.as_tensor(x_valid)
    best: tuple[float, float, int, dict] | None = None
    for decay in weight_decays:
        torch.manual_seed(seed)
        probe = build_probe(x_train.shape[1], y_train.shape[1], mean, std)
        optimiser = torch.optim.Adam(probe.linear.parameters(), lr=lr, weight_decay=decay)
        for step in range(1, steps + 1):
            optimiser.zero_grad()
            loss = masked_bce(probe(xt), yt, kt)
            loss.backward()
            optimiser.step()
            if step % 20 == 0 or step == steps:
                with torch.no_grad():
                    probs = torch.sigmoid(probe(xv)).numpy()
                score = evaluate_predictions(probs, y_valid, known_valid).mAP
                if best is None or score > best[0]:
                    best = (score, decay, step, {k: v.clone() for k, v in probe.state_dict().items()})
    assert best is not None
    score, decay, step, state = best
    probe = build_probe(x_train.shape[1], y_train.shape[1], mean, std)
    probe.load_state_dict(state)
    probe.eval()
    return probe, ProbeFit(weight_decay=decay, steps=step, valid_map=float(score))


def save_probe(probe: LinearProbe, path: Path | str, *, teacher: str, fit: ProbeFit) -> None:
    """Write the probe as a plain tensor dict (loadable with ``weights_only=True``)."""
    state = dict(probe.state_dict())
    state["meta.weight_decay"] = torch.tensor(fit.weight_decay)
    state["meta.steps"] = torch.tensor(fit.steps)
    write_rendered(path, lambda handle: torch.save(state, handle), what="the probe")


def load_probe(path: Path | str) -> LinearProbe:
    """Load a probe written by :func:`save_probe` (never unpickles objects)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"probe {path} not found; run `pipeline probe --teacher NAME` first")
    state = torch.load(path, map_location="cpu", weights_only=True)
    dim = state["mean"].shape[0]
    n_classes = state["linear.weight"].shape[0]
    probe = build_probe(dim, n_classes, state["mean"].numpy(), state["std"].numpy())
    probe.load_state_dict({k: v for k, v in state.items() if not k.startswith("meta.")})
    probe.eval()
    for parameter in probe.parameters():
        parameter.requires_grad_(False)
    return probe
