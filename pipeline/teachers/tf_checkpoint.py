"""Read TensorFlow tensor-bundle checkpoints (``<prefix>.index`` + ``<prefix>.data-*``) with numpy only.

A TF checkpoint is a LevelDB-style SSTable (the ``.index`` file) mapping tensor names to
``BundleEntryProto`` records (dtype, shape, shard, offset, size, crc32c), plus raw
little-endian tensor bytes in ``.data-NNNNN-of-MMMMM`` shard files. The empty key holds a
``BundleHeaderProto`` (number of shards, endianness). This reader parses both without
TensorFlow, so extraction never needs it; ``tests/test_teacher_musicnn_checkpoint.py``
checks it against ``tf.compat.v1.train.NewCheckpointReader``.

Supported: uncompressed index blocks (what TF writes), all numeric dtypes numpy knows.
Not supported (clear :class:`~pipeline.errors.TeacherError`): string tensors, partitioned
(sliced) variables, snappy-compressed index blocks. When the optional ``google_crc32c``
package is importable, tensor bytes are checked against their stored crc32c.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import TeacherError, WeightsNotFoundError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # 1 byte compression type + 4 bytes crc

#: TensorFlow ``DataType`` enum -> numpy dtype (little-endian).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<i4"),
    4: np.dtype("u1"),
    5: np.dtype("<i2"),
    6: np.dtype("i1"),
    9: np.dtype("<i8"),
    10: np.dtype("?"),
    17: np.dtype("<u2"),
    19: np.dtype("<f2"),
    22: np.dtype("<u4"),
    23: np.dtype("<u8"),
}


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor's bytes are.

    Attributes:
        name: variable name, e.g. ``conv2d/kernel``.
        dtype_enum: TensorFlow ``DataType`` number (1 = float32).
        shape: tensor shape.
        shard_id: which ``.data`` shard holds it.
        offset: byte offset in that shard.
        size: byte count.
        crc32c: masked crc32c of the bytes (0 when absent).
        sliced: whether the variable is partitioned (unsupported).
    """

    name: str
    dtype_enum: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    sliced: bool = False


def checkpoint_prefix(path: str | os.PathLike[str]) -> str:
    """The bundle prefix for ``path``.

    A directory means the prefix is the empty name inside it (musicnn's layout: files
    literally named ``.index`` and ``.data-00000-of-00001``); anything else is taken as the
    prefix itself (``model.ckpt`` for ``model.ckpt.index``).
    """
    text = os.fspath(path)
    if os.path.isdir(text):
        return text.rstrip(os.sep) + os.sep
    return text


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one protobuf message into (field number, value) pairs (varint/fixed/bytes)."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value = bytes(buf[pos : pos + length])
            if len(value) != length:
                raise ValueError("truncated length-delimited field")
            pos += length
        elif wire == 5:
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((field, value))
    return out


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims: list[int] = []
    for field, value in _proto_fields(buf):
        if field == 2 and isinstance(value, bytes):
            size = 0
            for sub_field, sub_value in _proto_fields(value):
                if sub_field == 1 and isinstance(sub_value, int):
                    size = sub_value - (1 << 64) if sub_value >= 1 << 63 else sub_value
            dims.append(size)
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> TensorEntry:
    values: dict[str, int] = {"dtype": 0, "shard_id": 0, "offset": 0, "size": 0, "crc32c": 0}
    shape: tuple[int, ...] = ()
    sliced = False
    numbers = {1: "dtype", 3: "shard_id", 4: "offset", 5: "size", 6: "crc32c"}
    for field, value in _proto_fields(buf):
        if field == 2 and isinstance(value, bytes):
            shape = _parse_shape(value)
        elif field == 7:
            sliced = True
        elif field in numbers and isinstance(value, int):
            values[numbers[field]] = value
    return TensorEntry(
        name, values["dtype"], shape, values["shard_id"], values["offset"], values["size"],
        values["crc32c"], sliced,
    )


def _read_block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of the SSTable block at ``data[offset:offset+size]``."""
    if offset + size + _BLOCK_TRAILER > len(data):
        raise ValueError("block handle points past the end of the file")
    if data[offset + size] != 0:
        raise ValueError(f"compressed block (type {data[offset + size]}) is not supported")
    block = data[offset : offset + size]
    (num_restarts,) = struct.unpack_from("<I", block, size - 4)
    limit = size - 4 * (num_restarts + 1)
    if limit < 0:
        raise ValueError("bad restart array")
    pairs: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        pairs.append((key, block[pos : pos + value_len]))
        pos += value_len
    return pairs


def _mask_crc(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


class CheckpointReader:
    """Numpy reader of one TF tensor bundle.

    Args:
        path: the bundle prefix, or a folder whose prefix is the empty name (see
            :func:`checkpoint_prefix`).

    Raises:
        WeightsNotFoundError: the ``.index`` file or a data shard is missing.
        TeacherError: the index is not a readable tensor-bundle SSTable.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.prefix = checkpoint_prefix(path)
        self.index_path = Path(self.prefix + ".index")
        if not self.index_path.is_file():
            raise WeightsNotFoundError(f"checkpoint index {str(self.index_path)!r} not found")
        try:
            self.num_shards, self.big_endian, self.entries = self._parse_index(self.index_path.read_bytes())
        except (ValueError, struct.error, IndexError) as exc:
            raise TeacherError(
                f"{str(self.index_path)!r} is not a readable TensorFlow checkpoint index ({exc}); "
                "re-install the weights"
            ) from None

    @staticmethod
    def _parse_index(data: bytes) -> tuple[int, bool, dict[str, TensorEntry]]:
        if len(data) < _FOOTER_SIZE:
            raise ValueError("file shorter than an SSTable footer")
        footer = data[-_FOOTER_SIZE:]
        (magic,) = struct.unpack_from("<Q", footer, _FOOTER_SIZE - 8)
        if magic != _TABLE_MAGIC:
            raise ValueError("bad SSTable magic number")
        pos = 0
        _meta_offset, pos = _varint(footer, pos)
        _meta_size, pos = _varint(footer, pos)
        index_offset, pos = _varint(footer, pos)
        index_size, pos = _varint(footer, pos)
        num_shards, big_endian = 1, False
        entries: dict[str, TensorEntry] = {}
        for _, handle in _read_block(data, index_offset, index_size):
            block_offset, hpos = _varint(handle, 0)
            block_size, _ = _varint(handle, hpos)
            for key, value in _read_block(data, block_offset, block_size):
                if key == b"":
                    for field, number in _proto_fields(value):
                        if field == 1 and isinstance(number, int):
                            num_shards = number
                        elif field == 2 and isinstance(number, int):
                            big_endian = number == 1
                    continue
                name = key.decode("utf-8")
                entries[name] = _parse_entry(name, value)
        return num_shards, big_endian, entries

    def data_path(self, shard_id: int = 0) -> Path:
        """File of data shard ``shard_id``."""
        return Path(f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}")

    def files(self) -> list[Path]:
        """The index file and every data shard, in order."""
        return [self.index_path] + [self.data_path(i) for i in range(self.num_shards)]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor name -> shape, for every tensor in the bundle."""
        return {name: entry.shape for name, entry in sorted(self.entries.items())}

    def read(self, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Read tensors (all when ``names`` is None) as native-endian numpy arrays.

        Raises:
            TeacherError: a name is not in the checkpoint, a dtype is unsupported, or the
                bytes disagree with the recorded size or crc32c.
            WeightsNotFoundError: a data shard is missing.
        """
        wanted = sorted(self.entries) if names is None else list(names)
        missing = [n for n in wanted if n not in self.entries]
        if missing:
            raise TeacherError(f"tensor(s) {missing} not in checkpoint {self.prefix!r}")
        try:
            import google_crc32c  # optional: verify the bytes when available
        except ImportError:
            google_crc32c = None  # type: ignore[assignment]  # the usual optional-import idiom
        out: dict[str, np.ndarray] = {}
        handles: dict[int, bytes] = {}
        for name in wanted:
            entry = self.entries[name]
            if entry.sliced:
                raise TeacherError(f"tensor {name!r} in {self.prefix!r} is partitioned; not supported")
            dtype = _DTYPES.get(entry.dtype_enum)
            if dtype is None:
                raise TeacherError(f"tensor {name!r} has unsupported TF dtype enum {entry.dtype_enum}")
            if entry.shard_id not in handles:
                path = self.data_path(entry.shard_id)
                if not path.is_file():
                    raise WeightsNotFoundError(f"checkpoint data file {str(path)!r} not found")
                handles[entry.shard_id] = path.read_bytes()
            raw = handles[entry.shard_id][entry.offset : entry.offset + entry.size]
            count = int(np.prod(entry.shape, dtype=np.int64))
            if len(raw) != entry.size or entry.size != count * dtype.itemsize:
                raise TeacherError(
                    f"tensor {name!r} in {str(self.data_path(entry.shard_id))!r}: expected "
                    f"{count * dtype.itemsize} bytes for shape {entry.shape}, found {len(raw)}; "
                    "re-install the weights"
                )
            if google_crc32c is not None and entry.crc32c:
                if _mask_crc(google_crc32c.value(raw)) != entry.crc32c:
                    raise TeacherError(
                        f"tensor {name!r} in {self.prefix!r} fails its crc32c check; re-install the weights"
                    )
            array = np.frombuffer(raw, dtype=dtype.newbyteorder(">") if self.big_endian else dtype)
            out[name] = array.astype(dtype.newbyteorder("="), copy=True).reshape(entry.shape)
        return out


def read_checkpoint(path: str | os.PathLike[str], names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read tensors of the checkpoint at ``path`` (prefix or folder); see :class:`CheckpointReader`."""
    return CheckpointReader(path).read(names)
