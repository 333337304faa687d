"""A PNG file written band by band: an image larger than memory allows can be saved while
it is computed, holding one band of rows at a time (nasflow upscale's output).

8-bit RGB, non-interlaced. Each row gets the PNG filter (None, Sub, Up, Average, Paeth) whose
output has the smallest sum of absolute signed bytes, the heuristic libpng and Pillow use,
so the files are about as small as Pillow's; any PNG reader decodes them.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from types import TracebackType

import numpy as np

__all__ = ["PngStream"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ROWS_AT_ONCE = 32  # rows filtered together: bounds the filter's scratch memory


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    a16, b16, c16 = a.astype(np.int16), b.astype(np.int16), c.astype(np.int16)
    p = a16 + b16 - c16
    pa, pb, pc = np.abs(p - a16), np.abs(p - b16), np.abs(p - c16)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filter_rows(rows: np.ndarray, above: np.ndarray) -> bytes:
    """Filtered scanlines (filter byte + bytes) of uint8 rows (n x W*3); `above` is the row
    before the first one (zeros at the top of the image)."""
    prior = np.vstack([above[None], rows[:-1]])  # the row above each row
    left = np.zeros_like(rows)
    left[:, 3:] = rows[:, :-3]  # the same channel of the pixel to the left
    upleft = np.zeros_like(rows)
    upleft[:, 3:] = prior[:, :-3]
    avg = ((left.astype(np.uint16) + prior) // 2).astype(np.uint8)
    candidates = np.stack([rows, rows - left, rows - prior, rows - avg, rows - _paeth(left, prior, upleft)])
    cost = np.abs(candidates.view(np.int8).astype(np.int16)).sum(axis=2, dtype=np.int64)  # 5 x n
    best = cost.argmin(axis=0)
    chosen = candidates[best, np.arange(rows.shape[0])]
    return np.hstack([best.astype(np.uint8)[:, None], chosen]).tobytes()


class PngStream:
    """with PngStream(path, width, height) as png: png.write(band) for bands of uint8
    H x width x 3 rows, top to bottom, `height` rows in all. Written to a temporary name
    and moved into place when complete, so a failure leaves no partial image."""

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, level: int = 6) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"a PNG needs at least 1 x 1 pixels, got {width} x {height}")
        self.path, self.width, self.height = Path(path), width, height
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._file = self.tmp.open("wb")
        self._zip = zlib.compressobj(level)
        self._above = np.zeros(width * 3, dtype=np.uint8)
        self.rows_written = 0
        self._file.write(_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))

    def write(self, band: np.ndarray) -> None:
        if band.dtype != np.uint8 or band.ndim != 3 or band.shape[1:] != (self.width, 3):
            raise ValueError(f"expected uint8 rows of {self.width} x 3, got {band.dtype} {band.shape}")
        if self.rows_written + band.shape[0] > self.height:
            raise ValueError(f"more than the {self.height} rows the PNG was opened for")
        flat = band.reshape(band.shape[0], -1)
        for i in range(0, flat.shape[0], _ROWS_AT_ONCE):
            rows = flat[i:i + _ROWS_AT_ONCE]
            data = self._zip.compress(_filter_rows(rows, self._above))
            if data:
                self._file.write(_chunk(b"IDAT", data))
            self._above = rows[-1].copy()
        self.rows_written += band.shape[0]

    def close(self) -> None:
        """Finish the file and move it into place; it must have all its rows."""
        if self.rows_written != self.height:
            raise ValueError(f"the PNG got {self.rows_written} of its {self.height} rows")
        try:
            self._file.write(_chunk(b"IDAT", self._zip.flush()) + _chunk(b"IEND", b""))
            self._file.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:  # a full disk: no partial image left, and the one line names the file
            self.abort()
            if exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror, str(self.tmp)) from exc

    def abort(self) -> None:
        try:
            self._file.close()  # its buffer may fail to flush again: the file goes either way
        except OSError:
            pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> PngStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
            if isinstance(exc, OSError) and exc.filename is None:  # a band's write on a full disk: say which file
                raise OSError(exc.errno, exc.strerror, str(self.tmp)) from exc
