"""The numpy reader of TF tensor-bundle checkpoints, on the shipped musicnn checkpoints (no TF).

The cross-check against TensorFlow's own reader is in ``test_teacher_musicnn_tf.py``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import TeacherError, WeightsNotFoundError
from pipeline.teachers.musicnn_net import MUSICNN_VARIABLES, VGG_VARIABLES
from pipeline.teachers.tf_checkpoint import CheckpointReader, checkpoint_prefix, read_checkpoint
from pipeline.teachers.weights import package_dir

PACKAGE = package_dir("musicnn")
pytestmark = pytest.mark.skipif(
    PACKAGE is None, reason="musicnn weights not installed (pip install --no-deps musicnn==0.1.0)"
)


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """A writable copy of the MTT_vgg checkpoint (smallest)."""
    folder = tmp_path / "MTT_vgg"
    folder.mkdir()
    for name in (".index", ".data-00000-of-00001"):
        shutil.copy(PACKAGE / "MTT_vgg" / name, folder / name)
    return folder


@pytest.mark.parametrize(
    "model, expected, total",
    [("MTT_musicnn", MUSICNN_VARIABLES, 150), ("MSD_musicnn", MUSICNN_VARIABLES, 150),
     ("MTT_vgg", VGG_VARIABLES, 86), ("MSD_vgg", VGG_VARIABLES, 86)],
)
def test_reads_every_tensor_of_the_shipped_checkpoints(model, expected, total):
    reader = CheckpointReader(PACKAGE / model)
    shapes = reader.shapes()
    assert len(shapes) == total  # model variables + Adam slots + beta powers
    for name, shape in expected.items():
        assert shapes[name] == shape
    tensors = reader.read()
    assert set(tensors) == set(shapes)
    for name, array in tensors.items():
        assert array.shape == shapes[name] and array.dtype == np.float32
        assert np.isfinite(array).all()
    # trained weights, not an initialiser: BN variances positive, kernels not constant
    assert (tensors["batch_normalization_1/moving_variance"] > 0).all()
    kernel = tensors["conv2d/kernel" if "musicnn" in model else "2CNN/kernel"]
    assert kernel.std() > 0
    assert [p.name for p in reader.files()] == [".index", ".data-00000-of-00001"]


def test_prefix_of_a_folder_is_the_empty_name_inside_it(tmp_path: Path):
    assert checkpoint_prefix(tmp_path) == str(tmp_path) + "/"
    assert checkpoint_prefix(tmp_path / "model.ckpt") == str(tmp_path / "model.ckpt")


def test_named_subset_and_unknown_name(copied: Path):
    subset = read_checkpoint(copied, ["dense/bias", "1CNN/kernel"])
    assert set(subset) == {"dense/bias", "1CNN/kernel"}
    with pytest.raises(TeacherError, match="'nope/kernel'"):
        read_checkpoint(copied, ["nope/kernel"])


def test_missing_files_are_weights_not_found(copied: Path, tmp_path: Path):
    with pytest.raises(WeightsNotFoundError, match=r"\.index"):
        CheckpointReader(tmp_path / "empty_prefix")
    (copied / ".data-00000-of-00001").unlink()
    reader = CheckpointReader(copied)  # the index alone is readable
    with pytest.raises(WeightsNotFoundError, match=r"\.data-00000-of-00001"):
        reader.read(["dense/bias"])


def test_corrupt_index_is_a_clear_error(copied: Path):
    index = copied / ".index"
    index.write_bytes(b"\x00" * 100)
    with pytest.raises(TeacherError, match="not a readable TensorFlow checkpoint index"):
        CheckpointReader(copied)
    index.write_bytes(b"short")
    with pytest.raises(TeacherError, match="re-install"):
        CheckpointReader(copied)


def test_truncated_data_is_a_clear_error(copied: Path):
    data = copied / ".data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(TeacherError, match="expected .* bytes .* re-install"):
        read_checkpoint(copied)


def test_flipped_byte_fails_the_crc_check(copied: Path):
    pytest.importorskip("google_crc32c", reason="crc32c verification needs google-crc32c")
    reader = CheckpointReader(copied)
    entry = reader.entries["dense/kernel"]
    data = copied / ".data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[entry.offset + 17] ^= 0x40
    data.write_bytes(bytes(raw))
    with pytest.raises(TeacherError, match="crc32c"):
        read_checkpoint(copied, ["dense/kernel"])
    read_checkpoint(copied, ["dense/bias"])  # other tensors still read
