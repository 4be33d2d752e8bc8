"""The *original* musicnn, for cross-checks and benchmarks only (test support, not part of the pipeline).

:class:`TFMusicnn` runs the TF1 inference graph stored in a checkpoint's ``.meta`` file: the
graph is imported with ``tf.compat.v1.train.import_meta_graph`` after deleting the
``_output_shapes`` attribute of every node (TF 2.x rejects the stale shapes of the training
graph's gradient nodes), then the variables are restored with ``saver.restore``. Unlike
upstream's ``extractor``, which rebuilds the graph from ``musicnn/models.py``, this is the
graph the weights were trained with (for ``MSD_vgg`` the two differ in their pooling).

:func:`upstream_patches` is upstream's pre-processing (``extractor.batch_data``): librosa mel
of the whole clip (``center=True``), ``log10(10000 * S + 1)``, patches of 187 frames.

Needs ``tensorflow`` (and ``librosa`` for :func:`upstream_patches`), imported lazily.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from pipeline.errors import TeacherError

#: Output tensors of the musicnn graphs (MTT_musicnn, MSD_musicnn), by port layer name.
MUSICNN_TENSORS = {
    "logits": "model/dense_1/BiasAdd:0",
    "taggram": "model/Sigmoid:0",
    "penultimate": "model/batch_normalization_10/batchnorm/add_1:0",
    "mean_pool": "model/moments/Squeeze:0",
    "max_pool": "model/Max:0",
    "frontend": "model/concat:0",  # (n, 187, 561): timbral = [..., :408], temporal = [..., 408:]
    "cnn1": "model/transpose:0",
    "cnn2": "model/Add:0",
    "cnn3": "model/Add_1:0",
}
#: Output tensors of the VGG graphs (MTT_vgg, MSD_vgg).
VGG_TENSORS = {
    "logits": "model/dense/BiasAdd:0",
    "taggram": "model/Sigmoid:0",
    "pool5": "model/Flatten/flatten/Reshape:0",
}


class TFMusicnn:
    """The original TF graph of one shipped musicnn checkpoint.

    Args:
        folder: the checkpoint folder (``musicnn/<model>/``, holding ``.meta``, ``.index``, ...).
        threads: TF intra-op threads (``None``: TF's default).
    """

    def __init__(self, folder: str | os.PathLike[str], threads: int | None = None) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            import tensorflow as tf
            from tensorflow.core.protobuf import meta_graph_pb2
        except ImportError as exc:
            raise TeacherError(
                f"the musicnn reference needs tensorflow ({exc}); pip install tensorflow-cpu"
            ) from None
        folder = os.fspath(folder).rstrip(os.sep) + os.sep
        meta = meta_graph_pb2.MetaGraphDef()
        with open(folder + ".meta", "rb") as handle:
            meta.ParseFromString(handle.read())
        for node in meta.graph_def.node:
            if "_output_shapes" in node.attr:
                del node.attr["_output_shapes"]
        self.graph = tf.Graph()
        config = tf.compat.v1.ConfigProto()
        if threads:
            config.intra_op_parallelism_threads = threads
            config.inter_op_parallelism_threads = 1
        with self.graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(meta)
            self.session = tf.compat.v1.Session(graph=self.graph, config=config)
            saver.restore(self.session, folder)
        self.is_vgg = "model/1CNN/Conv2D" in {op.name for op in self.graph.get_operations()}
        self.names = VGG_TENSORS if self.is_vgg else MUSICNN_TENSORS
        self._input = self.graph.get_tensor_by_name("model/Placeholder:0")
        self._training = self.graph.get_tensor_by_name("model/Placeholder_2:0")

    def run(self, logmel: np.ndarray, layers: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
        """Evaluate layers on log-mel patches.

        Args:
            logmel: float32 (n, 187, 96) patches.
            layers: keys of :data:`MUSICNN_TENSORS` or :data:`VGG_TENSORS`, or ``timbral`` /
                ``temporal`` (parts of the musicnn front end).

        Returns:
            layer -> float32 array, squeezed like the port's output: (n, dim) per patch, or
            (n, 187, dim) for frame-level layers.
        """
        wanted = {"frontend" if name in ("timbral", "temporal") else name for name in layers}
        fetch = {name: self.graph.get_tensor_by_name(self.names[name]) for name in wanted}
        out: dict[str, Any] = self.session.run(fetch, {self._input: logmel, self._training: False})
        if "frontend" in out:
            out["timbral"], out["temporal"] = out["frontend"][..., :408], out["frontend"][..., 408:]
        squeezed = {}
        for name in layers:
            value = out[name]
            value = np.asarray(value, dtype=np.float32)
            if name in ("mean_pool", "max_pool", "cnn1", "cnn2", "cnn3"):
                value = value[..., 0]
            squeezed[name] = value
        return squeezed

    def close(self) -> None:
        """Release the TF session."""
        self.session.close()


def upstream_logmel(audio: np.ndarray, float16: str = "none") -> np.ndarray:
    """Upstream's log-mel of a whole 16 kHz clip.

    Args:
        audio: float32 (samples,) mono at 16 kHz.
        float16: ``"none"`` (float32 throughout), ``"safe"`` (round the mel power through
            float16, no overflow) or ``"upstream"`` (``log10(10000 * float16(S) + 1)`` in
            float16, with its overflow to inf for mel power > 6.55).

    Returns:
        float32 (frames, 96), ``frames = 1 + samples // 256``.
    """
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    if float16 == "upstream":
        return np.log10(10000 * mel.astype(np.float16) + 1).astype(np.float32)
    if float16 == "safe":
        mel = mel.astype(np.float16).astype(np.float32)
    return np.log10(10000 * mel + 1).astype(np.float32)


def upstream_patches(audio: np.ndarray, hop_frames: int, float16: str = "none") -> np.ndarray:
    """Upstream's patches (``extractor.batch_data``): starts 0, hop, 2 hop, ... while 187 frames fit.

    Returns:
        float32 (n, 187, 96).
    """
    logmel = upstream_logmel(audio, float16)
    starts = range(0, logmel.shape[0] - 187 + 1, hop_frames)
    return np.stack([logmel[s : s + 187] for s in starts]).astype(np.float32)
