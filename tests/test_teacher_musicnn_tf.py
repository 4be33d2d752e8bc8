"""The musicnn port against the ORIGINAL: the TF1 graph of each shipped checkpoint, and TF's reader.

The graph is the one stored in the checkpoint's ``.meta`` (imported after deleting the stale
``_output_shapes`` attributes, then ``saver.restore``), fed upstream's pre-processing (librosa
mel of the whole clip, ``center=True``, patches of 187 frames). The port gets the same audio
and runs its own torch front end. Audio: rendered demo instruments (real SoundFont samples).
"""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.teachers.weights import package_dir

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.tf,
    pytest.mark.slow,
    pytest.mark.skipif(package_dir("musicnn") is None, reason="musicnn weights not installed"),
]

SR = 16000
TOLERANCE = 1e-3  # max |port - TF| / max |TF|


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def tf():
    try:
        import tensorflow
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"tensorflow is not importable ({exc}); pip install tensorflow-cpu")
    return tensorflow


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    """8 s of rendered violin then drums (demo renderer), 16 kHz."""
    from pipeline.datasets.demo import render_instrument

    parts = [render_instrument(name, seconds=4.0, sample_rate=SR, seed=1) for name in ("violin", "drums")]
    return np.concatenate(parts).astype(np.float32)


@pytest.fixture(scope="module")
def originals(tf):
    """model -> the original TF graph (loaded once per module)."""
    from tests.musicnn_reference import TFMusicnn

    folder = package_dir("musicnn")
    graphs = {model: TFMusicnn(folder / model, threads=1) for model in ("MTT_musicnn", "MTT_vgg")}
    yield graphs
    for graph in graphs.values():
        graph.close()


def port(**settings):
    from pipeline.teachers.musicnn import MusicnnConfig, MusicnnTeacher

    torch.set_num_threads(1)
    return MusicnnTeacher(MusicnnConfig(**settings)).load("cpu")


def test_numpy_reader_equals_tensorflow_reader(tf):
    from pipeline.teachers.tf_checkpoint import read_checkpoint

    for model in ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg"):
        folder = str(package_dir("musicnn") / model) + "/"
        reader = tf.compat.v1.train.NewCheckpointReader(folder)
        ours = read_checkpoint(folder)
        theirs = reader.get_variable_to_shape_map()
        assert set(ours) == set(theirs)
        for name, array in ours.items():
            np.testing.assert_array_equal(array, reader.get_tensor(name), err_msg=f"{model}:{name}")


def test_reader_on_a_checkpoint_tensorflow_writes(tf, tmp_path):
    """Other dtypes, a named prefix (not musicnn's empty one), several index blocks."""
    from pipeline.teachers.tf_checkpoint import read_checkpoint

    rng = np.random.default_rng(0)
    values = {
        "f16": rng.standard_normal((3, 5)).astype(np.float16),
        "f64": rng.standard_normal(7),
        "i32": rng.integers(-9, 9, (2, 3, 4)).astype(np.int32),
        "i64": np.array(2**40 + 3, dtype=np.int64),
        "u8": rng.integers(0, 255, 11).astype(np.uint8),
        "flag": np.array([True, False, True]),
    }
    values.update({f"scope/w{i:03d}": rng.standard_normal((4, 4)).astype(np.float32) for i in range(400)})
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.Variable(v, name=k) for k, v in values.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            prefix = saver.save(session, str(tmp_path / "model.ckpt"), write_meta_graph=False)
    ours = read_checkpoint(prefix)
    assert set(ours) == set(values)
    for name, value in values.items():
        assert ours[name].dtype == value.dtype, name
        np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_musicnn_patch_layers_equal_the_original(originals, audio):
    from tests.musicnn_reference import upstream_patches

    layers = ("logits", "taggram", "penultimate", "max_pool", "mean_pool")
    patches = upstream_patches(audio, 62)
    expected = originals["MTT_musicnn"].run(patches, layers)
    for layer in layers:
        ours = port(layer=layer).embed(audio)[0]
        assert len(ours) in (len(patches), len(patches) - 1)  # upstream may keep one more patch
        assert rel(ours, expected[layer][: len(ours)]) < TOLERANCE, layer


def test_musicnn_frame_layers_equal_the_original(originals, audio):
    from tests.musicnn_reference import upstream_patches

    layers = ("timbral", "temporal", "cnn1", "cnn2", "cnn3")
    patches = upstream_patches(audio, 187)  # non-overlapping, like the frame-level port
    expected = originals["MTT_musicnn"].run(patches, layers)
    for layer in layers:
        teacher = port(layer=layer, hop_seconds=2.992)
        ours = teacher.embed(audio)[0].reshape(-1, 187, teacher.embedding_dim)
        assert rel(ours, expected[layer][: len(ours)]) < TOLERANCE, layer


def test_vgg_equals_the_original(originals, audio):
    from tests.musicnn_reference import upstream_patches

    patches = upstream_patches(audio, 62)
    expected = originals["MTT_vgg"].run(patches, ("logits", "pool5"))
    for layer in ("logits", "pool5"):
        ours = port(model="MTT_vgg", layer=layer).embed(audio)[0]
        assert rel(ours, expected[layer][: len(ours)]) < TOLERANCE, layer


def test_msd_vgg_uses_the_pooling_of_its_own_graph(tf, audio):
    """The MSD_vgg checkpoint was trained with other pools than ``models.py`` builds."""
    from tests.musicnn_reference import TFMusicnn, upstream_patches

    original = TFMusicnn(package_dir("musicnn") / "MSD_vgg", threads=1)
    try:
        expected = original.run(upstream_patches(audio, 187), ("logits",))["logits"]
    finally:
        original.close()
    ours = port(model="MSD_vgg", layer="logits", hop_seconds=2.992).embed(audio)[0]
    assert rel(ours, expected[: len(ours)]) < TOLERANCE


def test_float16_cast_equals_upstream_quantisation_without_overflow(originals, audio):
    from tests.musicnn_reference import upstream_patches

    patches = upstream_patches(audio, 62, float16="safe")
    expected = originals["MTT_musicnn"].run(patches, ("logits",))["logits"]
    ours = port(layer="logits", float16_cast=True).embed(audio)[0]
    assert rel(ours, expected[: len(ours)]) < TOLERANCE
