"""Reference files for the OpenL3 / VGGish tests, made by TensorFlow in a subprocess.

Run as a script (``TF_USE_LEGACY_KERAS=1 python tests/fixtures_tf_teachers.py OUT``) it
reads ``OUT/inputs.npz`` and writes, in the official formats:

* ``openl3_audio_<repr>_music.h5``: the OpenL3 audio network built layer by layer as
  ``openl3/models.py`` builds it (tf-keras, Keras 2 style), random weights and random
  BatchNorm statistics, saved with ``save_weights``; plus ``keras_<repr>_<size>.npy``, the
  Keras outputs for 512 and 6144-d embeddings on openl3's librosa front end of the windows;
* ``kapre_<repr>.npy``: the openl3 0.4.x kapre front end restated with ``tf.signal.stft``
  (``pad_end=True``), magnitude, Slaney mel, dB;
* ``vggish_model.ckpt`` + ``vggish_pca_params.npz``: a TF-slim-named VGGish checkpoint with
  random weights, and ``slim_out.npy``, the TF graph's embeddings of the given log-mel examples.

Tests call :func:`reference_dir` (cached per test session): TensorFlow never loads in the
test process, so Keras 3 there is not disturbed.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
_CACHE: dict[str, object] = {}


def real_audio(seconds: float, sample_rate: int, seed: int = 0, instrument: str = "piano") -> np.ndarray:
    """Rendered instrument audio (the demo renderer, else a SoundFont note run), float32 mono."""
    try:
        from pipeline.datasets.demo import render_instrument

        audio = render_instrument(instrument, seconds=seconds, sample_rate=sample_rate, seed=seed)
        return audio.astype(np.float32)
    except ImportError:
        pass
    import pretty_midi
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"))
    synth.program_select(0, sfid, 0, 0)
    rng = np.random.default_rng(seed)
    out, step = [], int(0.25 * sample_rate)
    for _ in range(int(np.ceil(seconds * sample_rate / step))):
        synth.noteon(0, int(rng.integers(48, 80)), 100)
        out.append(np.asarray(synth.generate(step)).reshape(-1, 2).mean(axis=1))
    audio = np.concatenate(out)[: int(round(seconds * sample_rate))]
    return (0.1 * audio / (np.sqrt(np.mean(audio**2)) + 1e-9)).astype(np.float32)


def reference_inputs() -> dict[str, np.ndarray]:
    """The inputs every reference is computed on (deterministic).

    Returns:
        ``windows48``: float32 (4, 48000) OpenL3 windows of rendered piano at 48 kHz (an onset,
        a later window, the same at -60 dB, silence); ``examples``: float32 (3, 96, 64) VGGish
        log-mel examples of rendered audio (our front end; it is checked against torchvggish).
    """
    if "inputs" not in _CACHE:
        import torch

        from pipeline.teachers.vggish_net import VGGishFrontend

        audio48 = real_audio(2.2, 48000, seed=3)
        onset, later = audio48[:48000], audio48[46080:94080]
        windows48 = np.stack([onset, later, later * 1e-3, np.zeros(48000, np.float32)])
        audio16 = real_audio(3.0, 16000, seed=5, instrument="violin")
        log_mel = VGGishFrontend()(torch.from_numpy(audio16)[None])[0, 0].numpy()  # (frames, 64)
        examples = log_mel[: 3 * 96].reshape(3, 96, 64)
        _CACHE["inputs"] = {"windows48": windows48.astype(np.float32),
                            "examples": examples.astype(np.float32)}
    return _CACHE["inputs"]  # type: ignore[return-value]


def reference_dir(tmp_root: Path, reprs: tuple[str, ...] = ("mel128", "linear")) -> Path:
    """Run this script once per test session on :func:`reference_inputs`; return its output folder.

    Args:
        tmp_root: a session temporary folder.
        reprs: OpenL3 input representations to build.
    """
    if "dir" in _CACHE:
        return _CACHE["dir"]  # type: ignore[return-value]
    inputs = reference_inputs()
    out = Path(tmp_root) / "tf_reference"
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "inputs.npz", windows48=inputs["windows48"], examples=inputs["examples"],
             reprs=np.array(reprs))
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    result = subprocess.run([sys.executable, str(HERE), str(out)], env=env, capture_output=True, text=True,
                            timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"reference script failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    _CACHE["dir"] = out
    return out


# ---- the script (runs with TensorFlow) --------------------------------------------------
def _keras_openl3(keras, input_shape):  # noqa: ANN001, ANN202
    """openl3/models.py ``_construct_<repr>_audio_network(include_frontend=False)``, layer for layer."""
    layers = keras.layers
    x = inputs = layers.Input(shape=input_shape, dtype="float32")
    x = layers.BatchNormalization()(x)
    for block, filters in enumerate((64, 128, 256, 512)):
        x = layers.Conv2D(filters, (3, 3), padding="same", kernel_initializer="he_normal")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        if block < 3:
            x = layers.Conv2D(filters, (3, 3), padding="same", kernel_initializer="he_normal")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
            x = layers.MaxPooling2D(pool_size=(2, 2), strides=2)(x)
        else:
            x = layers.Conv2D(filters, (3, 3), padding="same", kernel_initializer="he_normal",
                              name="audio_embedding_layer")(x)
    return keras.Model(inputs=inputs, outputs=x)


def _randomise(model, rng) -> None:  # noqa: ANN001
    """Random BN statistics and biases (kernels keep their he_normal draw)."""
    first = True
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.__class__.__name__ == "BatchNormalization":
            c = weights[0].shape[0]
            mean = rng.uniform(-50, -30, c) if first else rng.normal(0.0, 0.5, c)
            var = rng.uniform(200, 600, c) if first else rng.uniform(0.5, 2.0, c)
            first = False
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0.0, 0.2, c), mean, var])
        else:
            layer.set_weights([weights[0], rng.normal(0.0, 0.05, weights[1].shape)])


def _librosa_frontend(window: np.ndarray, input_repr: str) -> np.ndarray:
    """openl3 core.py ``_librosa_linear_frontend`` / ``_librosa_mel_frontend`` (keyword form)."""
    import librosa

    if input_repr == "linear":
        spec = np.abs(librosa.stft(window, n_fft=512, hop_length=242, center=False))
    else:
        spec = librosa.feature.melspectrogram(y=window, sr=48000, n_mels=int(input_repr[3:]), n_fft=2048,
                                              hop_length=242, center=True, power=1.0)
    spec = librosa.power_to_db(spec, ref=1.0, amin=1e-10, top_db=80.0)
    return spec - spec.max()


def _kapre_frontend(tf, windows: np.ndarray, input_repr: str) -> np.ndarray:  # noqa: ANN001
    """openl3 0.4.x kapre front end: tf.signal.stft (pad_end for mel), |.|, Slaney mel, dB."""
    import librosa

    n_fft = 512 if input_repr == "linear" else 2048
    stft = tf.signal.stft(windows.astype(np.float64), frame_length=n_fft, frame_step=242, fft_length=n_fft,
                          window_fn=tf.signal.hann_window, pad_end=input_repr != "linear")
    mag = tf.abs(stft).numpy()  # (n, T, F)
    if input_repr != "linear":
        mag = mag @ librosa.filters.mel(sr=48000, n_fft=2048, n_mels=int(input_repr[3:])).T
    db = 10.0 * np.log10(np.maximum(mag, 1e-10))
    db = np.maximum(db - db.max(axis=(1, 2), keepdims=True), -80.0)
    return np.transpose(db, (0, 2, 1)).astype(np.float32)  # (n, F, T)


def _openl3(tf, keras, out: Path, windows: np.ndarray, reprs, rng) -> None:  # noqa: ANN001
    pools = {"linear": {6144: (8, 8), 512: (32, 24)}, "mel128": {6144: (4, 8), 512: (16, 24)},
             "mel256": {6144: (8, 8), 512: (32, 24)}}
    for input_repr in reprs:
        # openl3 reads audio as float64 (soundfile, resampy), so its librosa front end runs in float64
        specs = np.stack([_librosa_frontend(w.astype(np.float64), input_repr) for w in windows])[..., None]
        model = _keras_openl3(keras, specs.shape[1:])
        _randomise(model, rng)
        model.save_weights(str(out / f"openl3_audio_{input_repr}_music.h5"))
        for size, pool in pools[input_repr].items():
            pooled_map = keras.layers.MaxPooling2D(pool_size=pool, padding="same")(model.output)
            head = keras.layers.Flatten()(pooled_map)
            pooled = keras.Model(inputs=model.input, outputs=head)
            np.save(out / f"keras_{input_repr}_{size}.npy", pooled.predict(specs, verbose=0))
        np.save(out / f"kapre_{input_repr}.npy", _kapre_frontend(tf, windows, input_repr))


def _vggish_slim(tf, out: Path, examples: np.ndarray, rng) -> None:  # noqa: ANN001
    """A TF-slim-named VGGish graph (vggish_slim.py, fc2 with ReLU as in the first release)."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    values = {}
    with graph.as_default():
        features = v1.placeholder(tf.float32, shape=(None, 96, 64))
        net = tf.reshape(features, [-1, 96, 64, 1])

        def layer(net, scope, shape):  # noqa: ANN001, ANN202
            with v1.variable_scope(scope):
                w = v1.get_variable("weights", shape=shape, initializer=v1.zeros_initializer())
                b = v1.get_variable("biases", shape=shape[-1:], initializer=v1.zeros_initializer())
            fan_in = int(np.prod(shape[:-1]))
            values[w] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
            values[b] = rng.normal(0.0, 0.05, shape[-1:]).astype(np.float32)
            if len(shape) == 4:
                return tf.nn.relu(tf.nn.conv2d(net, w, 1, "SAME") + b)
            return tf.nn.relu(tf.matmul(net, w) + b)

        def pool(net):  # noqa: ANN001, ANN202
            return tf.nn.max_pool2d(net, 2, 2, "SAME")

        with v1.variable_scope("vggish"):
            net = pool(layer(net, "conv1", (3, 3, 1, 64)))
            net = pool(layer(net, "conv2", (3, 3, 64, 128)))
            with v1.variable_scope("conv3"):
                net = pool(layer(layer(net, "conv3_1", (3, 3, 128, 256)), "conv3_2", (3, 3, 256, 256)))
            with v1.variable_scope("conv4"):
                net = pool(layer(layer(net, "conv4_1", (3, 3, 256, 512)), "conv4_2", (3, 3, 512, 512)))
            net = tf.reshape(net, [-1, 6 * 4 * 512])
            with v1.variable_scope("fc1"):
                net = layer(layer(net, "fc1_1", (12288, 4096)), "fc1_2", (4096, 4096))
            net = layer(net, "fc2", (4096, 128))
        saver = v1.train.Saver(write_version=v1.train.SaverDef.V1)
        with v1.Session(graph=graph) as sess:
            for var, value in values.items():
                var.load(value, sess)
            embeddings = sess.run(net, {features: examples})
            saver.save(sess, str(out / "vggish_model.ckpt"), write_meta_graph=False, write_state=False)
    np.save(out / "slim_out.npy", embeddings)
    vectors = np.linalg.qr(rng.normal(size=(128, 128)))[0] / (embeddings.std() + 1e-6)
    np.savez(out / "vggish_pca_params.npz", pca_eigen_vectors=vectors, pca_means=embeddings.mean(axis=0))


def main(out: Path) -> None:
    import tensorflow as tf
    import tf_keras as keras

    tf.config.threading.set_intra_op_parallelism_threads(1)
    with np.load(out / "inputs.npz") as inputs:
        windows, examples, reprs = inputs["windows48"], inputs["examples"], [str(r) for r in inputs["reprs"]]
    rng = np.random.default_rng(1234)
    keras.utils.set_random_seed(1234)
    _openl3(tf, keras, out, windows, reprs, rng)
    _vggish_slim(tf, out, examples, rng)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
