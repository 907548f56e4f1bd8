"""dlib's serialization primitives written from Python (dlib/serialize.h, dlib/float_details.h),
byte for byte as dlib writes them, for the files BearID writes in the original tools' formats
(`bearid embed run --format dlib`: bearembed's per-chip embedding files).

- An integer: a control byte (0x80 if negative, and how many bytes follow, at least one), then
  its absolute value's bytes, least significant first, up to the last non-zero one.
- A float: float_details of its type (24 mantissa bits for a float), mantissa then exponent as
  integers, with whole zero bytes moved from the mantissa into the exponent.
- A matrix: minus its rows, minus its columns, then its values row by row.
"""

from __future__ import annotations

import math

import numpy as np


class Writer:
    """Bytes in dlib's format, appended in order (as dlib's `serialize(out) << a << b`)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def data(self) -> bytes:
        return b"".join(self.parts)

    def integer(self, value: int) -> Writer:
        magnitude = abs(int(value))
        body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
        if len(body) > 8:
            raise ValueError(f"{value} does not fit dlib's 64-bit integers")
        self.parts.append(bytes([len(body) | (0x80 if value < 0 else 0)]) + body)
        return self

    def number(self, value: float, digits: int = 24) -> Writer:
        """One float as dlib's float_details of a float (`digits` 24) or a double (53)."""
        if math.isnan(value):
            mantissa, exponent = 0, 32002
        elif math.isinf(value):
            mantissa, exponent = 0, 32000 if value > 0 else 32001
        else:
            fraction, exp = math.frexp(value)
            mantissa, exponent = int(fraction * (1 << digits)), exp - digits
            for _ in range(8):
                if mantissa & 0xFF:
                    break
                mantissa >>= 8
                exponent += 8
        return self.integer(mantissa).integer(exponent)

    def string(self, value: str) -> Writer:
        raw = value.encode("utf-8")
        self.integer(len(raw))
        self.parts.append(raw)
        return self

    def matrix(self, values: np.ndarray) -> Writer:
        """A dlib::matrix<float> (a vector is a column: rows x 1)."""
        m = np.asarray(values, dtype=np.float32)
        m = m.reshape(-1, 1) if m.ndim == 1 else m
        self.integer(-m.shape[0]).integer(-m.shape[1])
        for v in m.ravel().tolist():
            self.number(v)
        return self
