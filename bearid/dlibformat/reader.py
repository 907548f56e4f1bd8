"""dlib's serialization primitives (dlib/serialize.h, dlib/dnn/tensor.h), read from bytes.

- An integer is a control byte (0x80: negative; low 4 bits: how many bytes follow) and its
  absolute value in that many little-endian bytes.
- A float is two integers, mantissa then exponent: mantissa * 2**exponent (exponent 32000,
  32001, 32002: +inf, -inf, NaN).
- A string is its length, then its bytes; a bool is the byte '1' or '0'.
- A tensor is version 2, four dimensions (n, k, rows, columns), then raw float32 values.

Every read checks that the bytes are there and make sense, so a truncated or foreign file is
a `DlibFormatError` naming the byte offset, never a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bearid.errors import BearIDError


class DlibFormatError(BearIDError):
    """A file that is not (or no longer) what dlib writes, or a part BearID does not read."""


@dataclass(frozen=True)
class TensorSpan:
    """Where a tensor's values lie in the file: bytes [start, end), in tensor `version`'s form
    (2: raw little-endian float32s, 1: dlib numbers)."""

    start: int
    end: int
    version: int


class Reader:
    def __init__(self, data: bytes, name: str = "the file"):
        self.data, self.name, self.pos = data, name, 0
        self.last_tensor: TensorSpan | None = None

    @classmethod
    def open(cls, path: Path) -> Reader:
        try:
            return cls(Path(path).read_bytes(), str(path))
        except OSError as exc:
            raise DlibFormatError(f"{path}: cannot read ({exc.strerror})") from None

    def fail(self, what: str, at: int | None = None) -> DlibFormatError:
        return DlibFormatError(f"{self.name}: {what} at byte {self.pos if at is None else at}")

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.left:
            raise self.fail(f"truncated: {what} needs {n} bytes, {self.left} are left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self, what: str = "a byte") -> int:
        return self.take(1, what)[0]

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def integer(self, what: str = "an integer") -> int:
        start = self.pos
        control = self.byte(what)
        n = control & 0x0F
        if control & 0x70 or not 1 <= n <= 8:
            raise self.fail(f"not a dlib integer ({what}): control byte 0x{control:02x}", start)
        value = int.from_bytes(self.take(n, what), "little")
        return -value if control & 0x80 else value

    def uint(self, what: str = "a count") -> int:
        start = self.pos
        value = self.integer(what)
        if value < 0:
            raise self.fail(f"{what} is negative ({value})", start)
        return value

    def count(self, what: str, each: int = 1) -> int:
        """A length that must fit in what is left of the file (`each`: its items' least size)."""
        start = self.pos
        n = self.uint(what)
        if n * each > self.left:
            raise self.fail(f"truncated or damaged: {what} is {n}, more than the file holds", start)
        return n

    def number(self, what: str = "a number") -> float:
        mantissa, exponent = self.integer(what), self.integer(what)
        if exponent >= 32000:
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.fail(f"not a dlib number ({what}): 2**{exponent}") from None

    def numbers(self, n: int, what: str) -> np.ndarray:
        """`n` dlib numbers in a row (the same as `number` n times, written for speed: a shape
        predictor holds millions)."""
        data, pos, end = self.data, self.pos, len(self.data)
        out = np.empty(n, dtype=np.float64)
        try:
            for i in range(n):
                c = data[pos]
                k = c & 0x0F
                if c & 0x70 or not 1 <= k <= 8:
                    raise ValueError
                m = int.from_bytes(data[pos + 1 : pos + 1 + k], "little")
                m = -m if c & 0x80 else m
                pos += 1 + k
                c = data[pos]
                k = c & 0x0F
                if c & 0x70 or not 1 <= k <= 8:
                    raise ValueError
                e = int.from_bytes(data[pos + 1 : pos + 1 + k], "little")
                e = -e if c & 0x80 else e
                pos += 1 + k
                if pos > end:
                    raise IndexError
                out[i] = math.ldexp(m, e) if e < 32000 else {32000: math.inf, 32001: -math.inf}.get(e, math.nan)
        except (IndexError, ValueError, OverflowError):
            self.pos = min(pos, end)
            raise self.fail(f"truncated or damaged: {what} ({n} numbers) stops") from None
        self.pos = pos
        return out.astype(np.float32)

    def flag(self, what: str = "a flag") -> bool:
        start = self.pos
        b = self.byte(what)
        if b not in (0x30, 0x31):
            raise self.fail(f"not a dlib bool ({what}): 0x{b:02x}", start)
        return b == 0x31

    def string(self, what: str = "a name") -> str:
        n = self.count(what)
        return self.take(n, what).decode("latin-1")

    def tag(self, expected: tuple[str, ...], what: str) -> str:
        """A version tag (a string) that must be one of `expected`."""
        start = self.pos
        try:
            found = self.string(what)
        except DlibFormatError:
            raise self.fail(f"expected {what} ({' or '.join(expected)})", start) from None
        if found not in expected:
            raise self.fail(f"{what}: {found!r} is not one BearID reads ({', '.join(expected)})", start)
        return found

    def version(self, accepted: tuple[int, ...], what: str) -> int:
        start = self.pos
        v = self.integer(f"the version of {what}")
        if v not in accepted:
            raise self.fail(f"{what} version {v} is not one BearID reads ({', '.join(map(str, accepted))})", start)
        return v

    def tensor(self, what: str = "a tensor") -> np.ndarray:
        """A tensor; where its values lie is left in `last_tensor` (a writer patches them there)."""
        start = self.pos
        version = self.integer(f"the version of {what}")
        dims = [self.uint(f"a dimension of {what}") for _ in range(4)]
        n = math.prod(dims)
        values = self.pos
        if version == 2:
            raw = self.take(4 * n, what)
            self.last_tensor = TensorSpan(values, self.pos, version)
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)
        if version == 1:  # dlib's pre-release tensors: dlib numbers
            out = self.numbers(n, what).reshape(dims)
            self.last_tensor = TensorSpan(values, self.pos, version)
            return out
        raise self.fail(f"{what}: tensor version {version} is not one BearID reads (1, 2)", start)

    def alias(self, what: str = "a tensor view") -> tuple[int, int, int, int]:
        self.version((1,), what)
        return tuple(self.uint(f"a dimension of {what}") for _ in range(4))  # type: ignore[return-value]

    def matrix(self, what: str = "a matrix") -> np.ndarray:
        """A dlib::matrix of floats (rows, columns stored negated), row by row."""
        rows, cols = abs(self.integer(f"the rows of {what}")), abs(self.integer(f"the columns of {what}"))
        if rows * cols * 2 > self.left:
            raise self.fail(f"truncated or damaged: {what} is {rows}x{cols}, more than the file holds")
        return self.numbers(rows * cols, what).reshape(rows, cols)
