"""Random weights in each teacher's official file format, for timing and precision checks.

Speed does not depend on the weights' values, so where the real files are absent (OpenL3,
VGGish, PaSST, CNN14 need downloads) these files stand in: the same names, layouts and
shapes the loaders read, random values scaled so activations stay in a sane range (a
variance-preserving init; batch-norm statistics at the front ends' scale). ``tiny=True``
shrinks PaSST and CNN14 (CPU smoke runs and tests).

Usage from code: ``teacher_settings(folder, tiny=False)`` writes every missing file under
``folder`` and returns ``{teacher name: params.yaml settings}`` pointing at them; musicnn
uses the installed package (its real weights) unless ``musicnn_weights`` is given.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PANNS_TINY = {"widths": (4, 8, 8, 8, 8, 16), "num_classes": 527}
PASST_TINY = {"embed_dim": 32, "depth": 2, "num_heads": 4, "num_classes": 527}


def _init(net: Any, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    module.bias.zero_()


def write_panns(path: Path, architecture: dict | None = None) -> Path:
    """``Cnn14_mAP=0.431.pth``: ``{"iteration", "model": state_dict}`` as the Zenodo release."""
    import torch

    from pipeline.teachers import panns_net
    from pipeline.teachers.panns import ARCHITECTURE

    net = panns_net.Cnn14(**(architecture or ARCHITECTURE))
    _init(net, 0)
    with torch.no_grad():
        net.bn0.running_mean.fill_(-40.0)
        net.bn0.running_var.fill_(400.0)
    torch.save({"iteration": 0, "model": net.state_dict()}, path)
    return path


def write_passt(path: Path, architecture: dict | None = None) -> Path:
    """``passt-s-f128-p16-s10-ap.476-swa.pt``: the bare state_dict, as the release."""
    import torch

    from pipeline.teachers import passt_net
    from pipeline.teachers.passt import ARCHITECTURE

    torch.manual_seed(0)
    net = passt_net.PaSST(**(architecture or ARCHITECTURE))
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.05 * torch.randn_like(param))
    torch.save(net.state_dict(), path)
    return path


def write_vggish(folder: Path) -> Path:
    """torchvggish's ``vggish-10086976.pth`` state_dict and ``vggish_pca_params-970ea276.pth``."""
    import torch

    from pipeline.teachers.vggish import TORCH_PCA, TORCH_WEIGHTS
    from pipeline.teachers.vggish_net import VGGishModel

    model = VGGishModel(postprocess=False)
    _init(model.net, 1)
    torch.save(model.net.state_dict(), folder / TORCH_WEIGHTS)
    rng = np.random.default_rng(1)
    vectors, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    torch.save({"pca_eigen_vectors": torch.from_numpy(vectors), "pca_means": torch.zeros(128, 1, dtype=torch.float64)},
               folder / TORCH_PCA)
    return folder / TORCH_WEIGHTS


def write_openl3(path: Path, input_repr: str = "mel128") -> Path:
    """``openl3_audio_<repr>_music.h5``: Keras-2 ``save_weights`` layout (layer_names, weight_names)."""
    import h5py

    from pipeline.teachers.openl3_net import OpenL3Net

    rng = np.random.default_rng(2)
    shapes = OpenL3Net(input_repr, 512).expected_shapes()
    with h5py.File(path, "w") as handle:
        names = []
        for index, (kind, arrays) in enumerate(shapes):
            name = f"batch_normalization_{index}" if kind == "bn" else f"conv2d_{index}"
            names.append(name.encode())
            group = handle.create_group(name)
            if kind == "bn":
                weight_names = [f"{name}/{w}:0" for w in ("gamma", "beta", "moving_mean", "moving_variance")]
                values = [np.ones(arrays[0]), np.zeros(arrays[0]), np.zeros(arrays[0]), np.ones(arrays[0])]
                if index == 0:  # the input BN sees dB-scaled spectrograms
                    values[2], values[3] = np.full(arrays[0], -40.0), np.full(arrays[0], 400.0)
            else:
                kernel, bias = arrays
                fan_in = kernel[0] * kernel[1] * kernel[2]
                weight_names = [f"{name}/kernel:0", f"{name}/bias:0"]
                values = [rng.standard_normal(kernel) * np.sqrt(2.0 / fan_in), np.zeros(bias)]
            group.attrs["weight_names"] = [w.encode() for w in weight_names]
            for w, v in zip(weight_names, values):
                group.create_dataset(w, data=np.asarray(v, dtype=np.float32))
        handle.attrs["layer_names"] = names
    return path


def teacher_settings(folder: Path, *, tiny: bool = False, musicnn_weights: str | None = None) -> dict[str, dict]:
    """Write the missing random weight files under ``folder``; return each teacher's settings.

    Returns:
        ``{"musicnn": {...}, "openl3": {...}, "vggish": {...}, "passt": {...}, "panns": {...}}``.
    """
    from pipeline.teachers.panns import CHECKPOINT_NAME as PANNS_FILE
    from pipeline.teachers.passt import CHECKPOINT_NAME as PASST_FILE
    from pipeline.teachers.vggish import TORCH_WEIGHTS

    folder.mkdir(parents=True, exist_ok=True)
    suffix = "-tiny" if tiny else ""
    (folder / f"panns{suffix}").mkdir(exist_ok=True)
    (folder / f"passt{suffix}").mkdir(exist_ok=True)
    (folder / "vggish").mkdir(exist_ok=True)
    panns = folder / f"panns{suffix}" / PANNS_FILE
    passt = folder / f"passt{suffix}" / PASST_FILE
    openl3 = folder / "openl3_audio_mel128_music.h5"
    if not panns.exists():
        write_panns(panns, PANNS_TINY if tiny else None)
    if not passt.exists():
        write_passt(passt, PASST_TINY if tiny else None)
    if not (folder / "vggish" / TORCH_WEIGHTS).exists():
        write_vggish(folder / "vggish")
    if not openl3.exists():
        write_openl3(openl3)
    musicnn: dict[str, Any] = {"model": "MTT_musicnn", "layer": "penultimate", "hop_seconds": 1.0}
    if musicnn_weights:
        musicnn["weights"] = musicnn_weights
    return {
        "musicnn": musicnn,
        "openl3": {"input_repr": "mel128", "embedding_size": 512, "backend": "torch", "weights": str(openl3)},
        "vggish": {"weights": str(folder / "vggish")},
        "passt": {"weights": str(passt)},
        "panns": {"weights": str(panns)},
    }
