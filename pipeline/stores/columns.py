"""Columns of strings for the compact index: one byte blob plus end offsets, or raw sha256 digests.

A million track ids cost their UTF-8 bytes plus 8 bytes each, not a million Python strings.
Columns are validated with whole-array numpy operations, because an index is input from
someone else (:func:`check_id_column` refuses exactly what :func:`~pipeline.stores.index.check_track_id`
refuses, without a Python loop over the ids).
"""
from __future__ import annotations

import codecs
import hashlib
import re
from typing import Mapping, Sequence

import numpy as np

from pipeline.errors import StoreError
from pipeline.stores.index import check_track_id

#: lower-case hex digits, as bytes (for turning raw digests back into text without a loop)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_SHA_HEX = re.compile(r"[0-9a-f]*")
#: bytes of one sha256 digest
DIGEST_BYTES = 32
#: checks run over blocks of this many rows / bytes (bounded temporaries)
_BLOCK_ROWS = 1 << 16
_BLOCK_BYTES = 1 << 22


def id_hash(key: bytes) -> int:
    """The 64-bit lookup hash of a track id's UTF-8 bytes (blake2b, stable across processes)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


class TextColumn:
    """``n`` strings: ``blob`` (uint8 UTF-8 bytes) and ``ends`` (int64, end of string i in the blob),
    or ``digests`` (uint8 (n, 32)) when every string is a 64-digit lower-case hex sha256.

    Args:
        blob, ends: the UTF-8 form (both or neither).
        digests: the digest form.
    """

    def __init__(self, *, blob: np.ndarray | None = None, ends: np.ndarray | None = None,
                 digests: np.ndarray | None = None) -> None:
        self.blob, self.ends, self.digests = blob, ends, digests

    @classmethod
    def build(cls, values: Sequence[str], *, allow_digests: bool = True) -> "TextColumn":
        """The column of ``values`` (digest form when they are all sha256 hex and ``allow_digests``)."""
        joined = "".join(values)
        digests = len(joined) == 64 * len(values) and all(len(v) == 64 for v in values)
        if allow_digests and digests and _SHA_HEX.fullmatch(joined):
            raw = np.frombuffer(bytes.fromhex(joined), dtype=np.uint8).reshape(len(values), DIGEST_BYTES)
            return cls(digests=raw.copy())
        encoded = [v.encode("utf-8") for v in values]
        ends = np.cumsum([len(e) for e in encoded], dtype=np.int64) if encoded else np.zeros(0, np.int64)
        return cls(blob=np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), ends=ends)

    def __len__(self) -> int:
        return len(self.digests) if self.digests is not None else len(self._utf8()[1])

    def key(self, i: int) -> bytes:
        """UTF-8 bytes of string ``i`` (hex text for the digest form)."""
        if self.digests is not None:
            return self.digests[i].tobytes().hex().encode("ascii")
        blob, ends = self._utf8()
        start = int(ends[i - 1]) if i > 0 else 0
        return blob[start:int(ends[i])].tobytes()

    def __getitem__(self, i: int) -> str:
        return self.key(i).decode("utf-8")

    def _utf8(self) -> tuple[np.ndarray, np.ndarray]:
        """``(blob, ends)`` of the UTF-8 form (call on that form only)."""
        if self.blob is None or self.ends is None:
            raise StoreError("internal: a digest column has no UTF-8 blob")
        return self.blob, self.ends

    def strings(self) -> list[str]:
        """Every string, in order (one decode of the blob)."""
        if self.digests is not None:
            return [row.tobytes().hex() for row in self.digests]
        blob, ends = self._utf8()
        text = blob.tobytes().decode("utf-8")
        if len(text) == len(blob):  # ASCII: characters are bytes
            bounds = ends.tolist()
        else:
            lead = np.concatenate([[0], np.cumsum((blob & 0xC0) != 0x80, dtype=np.int64)])
            bounds = lead[ends].tolist()
        return [text[a:b] for a, b in zip([0] + bounds[:-1], bounds)]

    def slice(self, lo: int, hi: int) -> "TextColumn":
        """Strings ``[lo, hi)`` as a column (views, no copy)."""
        if self.digests is not None:
            return TextColumn(digests=self.digests[lo:hi])
        blob, ends = self._utf8()
        base = int(ends[lo - 1]) if lo > 0 else 0
        return TextColumn(blob=blob[base:int(ends[hi - 1]) if hi > lo else base], ends=ends[lo:hi] - base)

    def nbytes(self) -> int:
        """Bytes held in memory."""
        if self.digests is not None:
            return int(self.digests.nbytes)
        blob, ends = self._utf8()
        return int(blob.nbytes + ends.nbytes)

    def as_text(self) -> "TextColumn":
        """The UTF-8 form of this column (a copy for the digest form)."""
        if self.digests is None:
            return self
        text = np.empty((len(self.digests), 2 * DIGEST_BYTES), dtype=np.uint8)
        text[:, 0::2] = _HEX[self.digests >> 4]
        text[:, 1::2] = _HEX[self.digests & 15]
        ends = np.arange(1, len(text) + 1, dtype=np.int64) * (2 * DIGEST_BYTES)
        return TextColumn(blob=text.reshape(-1), ends=ends)

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays saved for this column under ``name`` (``name.digests`` or ``name.blob`` + ``name.ends``)."""
        if self.digests is not None:
            return {f"{name}.digests": self.digests}
        blob, ends = self._utf8()
        return {f"{name}.blob": blob, f"{name}.ends": ends}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], name: str, n: int, *, where: str,
                    max_chars: int) -> "TextColumn":
        """The column ``name`` of ``n`` strings, checked: sizes, UTF-8, at most ``max_chars`` characters each.

        Raises:
            StoreError: naming ``where`` and the column.
        """
        if f"{name}.digests" in arrays:
            digests = arrays[f"{name}.digests"]
            if digests.shape != (n, DIGEST_BYTES):
                raise StoreError(f"{where}: {name} digests have shape {digests.shape}, expected ({n}, 32)")
            return cls(digests=digests)
        blob, ends = arrays.get(f"{name}.blob"), arrays.get(f"{name}.ends")
        if blob is None or ends is None:
            raise StoreError(f"{where}: column {name!r} is missing; refusing the index")
        column = cls(blob=blob, ends=ends)
        column._check(n, where=where, name=name, max_chars=max_chars)
        return column

    def starts(self) -> np.ndarray:
        """Start of every string in the blob (int64, (n,))."""
        return np.concatenate([[0], self._utf8()[1][:-1]]).astype(np.int64)

    def _check(self, n: int, *, where: str, name: str, max_chars: int) -> None:
        """Sizes, offsets, UTF-8 and lengths, with temporaries of O(n) or one block, never O(blob) int64."""
        blob, ends = self._utf8()
        if blob.ndim != 1 or ends.shape != (n,):
            raise StoreError(f"{where}: column {name!r} holds {ends.shape} ends for {n} rows")
        if n == 0:
            if len(blob):
                raise StoreError(f"{where}: column {name!r} holds bytes but no rows")
            return
        sizes = np.diff(ends, prepend=0)
        if ends[-1] != len(blob) or (sizes < 0).any():
            raise StoreError(f"{where}: column {name!r} has end offsets outside its bytes; refusing the index")
        starts = ends - sizes
        if ((blob[starts[sizes > 0]] & 0xC0) == 0x80).any():
            raise StoreError(f"{where}: column {name!r} splits a UTF-8 character; refusing the index")
        decoder = codecs.getincrementaldecoder("utf-8")()
        view = np.ascontiguousarray(blob).data
        try:
            for at in range(0, len(blob), _BLOCK_BYTES):
                decoder.decode(view[at:at + _BLOCK_BYTES], final=at + _BLOCK_BYTES >= len(blob))
        except UnicodeDecodeError as exc:
            raise StoreError(f"{where}: column {name!r} is not UTF-8 ({exc.reason}); refusing the index") from None
        for row in np.flatnonzero(sizes > max_chars).tolist():  # bytes >= characters: only these can be too long
            if len(self[row]) > max_chars:
                raise StoreError(f"{where}: {name} of row {row} is {len(self[row])} characters (> {max_chars})")


def concat_columns(columns: Sequence[TextColumn]) -> TextColumn:
    """One column holding ``columns`` one after the other (digest form when all are)."""
    digests = [c.digests for c in columns if c.digests is not None]
    if columns and len(digests) == len(columns):
        return TextColumn(digests=np.concatenate(digests))
    texts = [c.as_text()._utf8() for c in columns]
    shift = np.cumsum([0] + [len(blob) for blob, _ends in texts[:-1]], dtype=np.int64)
    ends = [e + s for (_blob, e), s in zip(texts, shift)]
    blob = np.concatenate([b for b, _e in texts]) if texts else np.zeros(0, np.uint8)
    return TextColumn(blob=blob, ends=np.concatenate(ends) if ends else np.zeros(0, np.int64))


def check_id_column(ids: TextColumn, *, where: str) -> None:
    """Refuse ids that :func:`~pipeline.stores.index.check_track_id` refuses, vectorised over the column.

    An id is refused when it is empty, starts with ``/``, has a ``..`` path component, a
    backslash or a control character (lengths and UTF-8 are checked by :meth:`TextColumn.from_arrays`).
    The column is checked in blocks of rows, so temporaries stay small whatever its size.

    Raises:
        StoreError: quoting the first refused id, as :func:`check_track_id` words it.
    """
    blob, ends = ids._utf8()
    starts = ids.starts()
    for lo in range(0, len(ends), _BLOCK_ROWS):
        hi = min(lo + _BLOCK_ROWS, len(ends))
        base = int(starts[lo])
        bad = _bad_ids(blob[base:int(ends[hi - 1])], starts[lo:hi] - base, ends[lo:hi] - base)
        if bad.any():
            row = lo + int(np.argmax(bad))
            check_track_id(ids[row], where=where)
            raise StoreError(f"{where}: track id {ids[row][:80]!r} is not allowed; refusing it")


def _bad_ids(blob: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(n,) bool: which ids of a self-contained block (``blob`` from the first id's start) are refused."""
    bad_rows = ends == starts
    filled = ~bad_rows
    bad_rows[filled] |= blob[starts[filled]] == ord("/")
    byte_bad = np.flatnonzero((blob < 0x20) | (blob == 0x7F) | (blob == ord("\\")))
    bad_rows[np.searchsorted(ends, byte_bad, side="right")] = True
    pairs = np.flatnonzero((blob[:-1] == ord(".")) & (blob[1:] == ord(".")))  # ".." anywhere: rare
    if pairs.size:
        row = np.searchsorted(ends, pairs, side="right")
        first, end = starts[row], ends[row]
        inside = pairs + 2 <= end
        left = (pairs == first) | (blob[np.maximum(pairs - 1, 0)] == ord("/"))
        right = (pairs + 2 == end) | (blob[np.minimum(pairs + 2, len(blob) - 1)] == ord("/"))
        bad_rows[row[inside & left & right]] = True
    return bad_rows
