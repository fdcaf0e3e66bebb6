"""The chunks a caller streams: their type, and each chunk checked and brought into the moments' units."""

from typing import Callable, Iterable, Iterator

import numpy as np

from linreg.moments import Moments, power_scaled

Chunks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


def _checked_chunks(moments: Moments, chunks: Chunks) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each chunk as float64, checked for shape, in the moments' power-of-two units.

    Raises:
        ValueError: a chunk's x is not (k, d) beside a (k,) y.
    """
    d = moments.d
    for x, y in chunks():
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or y.ndim != 1 or x.shape != (len(y), d):
            raise ValueError(f"chunks: x of shape {x.shape} beside y of shape {y.shape}; expected ({len(y)}, {d})")
        yield power_scaled(x, y, *moments.exponents) if moments.scaled else (x, y)
