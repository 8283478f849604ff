"""Numeric arrays are stored as little-endian float32 bytes: 4 bytes a value, NaN where
Studio sent `null`. Compact, exact for Studio's Float32Array data, and no JSON to reparse."""

from collections.abc import Sequence

import numpy as np

STORED_DTYPE = np.dtype("<f4")


def to_float32(values: Sequence[float | None]) -> np.ndarray:
    # numpy turns None into NaN when the dtype is float.
    return np.asarray(values, dtype=np.float64).astype(STORED_DTYPE)


def pack(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=STORED_DTYPE).tobytes()


def unpack(blob: bytes | None) -> np.ndarray:
    """The stored array (read-only view), or an empty one for a missing stream."""
    if blob is None:
        return np.empty(0, dtype=STORED_DTYPE)
    return np.frombuffer(blob, dtype=STORED_DTYPE)
