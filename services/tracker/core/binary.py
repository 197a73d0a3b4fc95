"""A tiny little-endian binary codec for tracker state: fixed-width numbers, text, raw arrays.

State is written on every message (the Faust table's changelog), so the format is chosen for
speed and exactness: numbers are IEEE-754 / two's complement little-endian, arrays are their
raw bytes (``<f8``, ``<i8``), and reading an array back is a zero-copy ``np.frombuffer`` view
(read-only, which suits state that is never changed in place). Arrays start at a multiple of 8
bytes from the start of the encoding (zero padding before them), so the views are aligned and
numpy runs its fast loops on them. Bytes written, read and written again are identical.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

F8: Final = np.dtype("<f8")
I8: Final = np.dtype("<i8")
F4: Final = np.dtype("<f4")
_U32 = struct.Struct("<I")
_PADDING = bytes(8)


class StateFormatError(ValueError):
    """Bytes that are not a tracker state this code can read (truncated, other version...)."""


class Writer:
    """Collects the parts of one encoded state; :meth:`getvalue` joins them."""

    __slots__ = ("_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def raw(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)

    def pack(self, fmt: struct.Struct, *values: object) -> None:
        self.raw(fmt.pack(*values))

    def text(self, value: str) -> None:
        data = value.encode("utf-8")
        self.raw(_U32.pack(len(data)))
        self.raw(data)

    def array(self, values: npt.NDArray[np.generic], dtype: np.dtype[np.generic]) -> None:
        """Raw bytes of ``values`` as ``dtype``, 8-byte aligned; the reader knows the shape."""
        self.raw(_PADDING[: -self._size % 8])
        self.raw(np.ascontiguousarray(values, dtype=dtype).tobytes())

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads what a :class:`Writer` wrote, in the same order; errors are StateFormatError."""

    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def _take(self, size: int) -> int:
        start = self._offset
        if size < 0 or start + size > len(self._data):
            raise StateFormatError(
                f"tracker state truncated: need {size} bytes at offset {start}, "
                f"have {len(self._data) - start}"
            )
        self._offset = start + size
        return start

    def raw(self, size: int) -> bytes:
        start = self._take(size)
        return self._data[start : start + size]

    def unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        start = self._take(fmt.size)
        return fmt.unpack_from(self._data, start)

    def text(self) -> str:
        (size,) = _U32.unpack_from(self._data, self._take(4))
        start = self._take(int(size))
        try:
            return self._data[start : start + int(size)].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateFormatError(f"tracker state: bad text at offset {start}") from exc

    def _align(self) -> None:
        pad = -self._offset % 8
        if self.raw(pad) != _PADDING[:pad]:
            raise StateFormatError(f"tracker state: bad padding at offset {self._offset - pad}")

    def array_f8(self, rows: int, cols: int) -> F64:
        self._align()
        start = self._take(rows * cols * 8)
        return np.frombuffer(self._data, F8, rows * cols, start).reshape(rows, cols)

    def array_f4(self, rows: int, cols: int) -> npt.NDArray[np.float32]:
        self._align()
        start = self._take(rows * cols * 4)
        return np.frombuffer(self._data, F4, rows * cols, start).reshape(rows, cols)

    def array_i8(self, rows: int, cols: int) -> I64:
        self._align()
        start = self._take(rows * cols * 8)
        return np.frombuffer(self._data, I8, rows * cols, start).reshape(rows, cols)

    def done(self) -> None:
        """Raise unless everything was read (trailing bytes mean a format mismatch)."""
        if self._offset != len(self._data):
            raise StateFormatError(
                f"tracker state: {len(self._data) - self._offset} unexpected trailing bytes"
            )
