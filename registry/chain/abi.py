"""The few pieces of the Ethereum ABI the registry's read path needs, with strict bounds.

Reading records needs keccak-256, checksummed addresses, the calldata of a handful of view
calls and the decoding of what they and the registry's events return. web3 and eth-abi do all
of that and much more, but importing them costs over a second; a command that only reads (``verify``,
``resolve``, ``show``, ``ls``) over JSON-RPC uses this module instead, and web3 stays with the
commands that sign and send (:mod:`registry.chain.network`).

Everything decoded here comes from a node, so it is hostile input: :func:`decode` checks every
offset and length against the answer before it reads or allocates anything (an array of 2**255
items claims 2**260 bytes and is refused by arithmetic, not by running out of memory), refuses
values wider than their type (a ``uint8`` word above 255, an ``address`` with bits in its first
12 bytes, a ``bool`` other than 0 or 1), non-zero padding, strings that are not UTF-8, and
nesting deeper than the types say. A refusal raises :class:`AbiDecodeError` naming what is wrong.

Types understood: ``uintN``, ``intN``, ``bool``, ``address``, ``bytesN``, ``bytes``, ``string``,
``T[]``, ``T[k]`` and tuples ``(T1,T2,...)``, nested in any way the types are written.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, cast

from ..errors import IntegrityError

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

__all__ = [
    "AbiDecodeError",
    "keccak",
    "checksum_address",
    "is_address",
    "address_bytes",
    "selector",
    "decode",
    "encode",
    "encode_call",
]

_WORD = 32


class AbiDecodeError(IntegrityError):
    """ABI-encoded bytes (a call's answer, an event's data, revert data) do not decode as their type."""


# ----------------------------------------------------------------------------------------------
# keccak and addresses


def _keccak_backend() -> Callable[[bytes], bytes]:
    """Keccak-256 from pycryptodome's compiled keccak, called through ctypes: its Python wrapper
    loads cffi and pycparser (a tenth of a second, more than the rest of a read's chain layer)."""
    try:
        import ctypes
        from importlib.util import find_spec

        spec = find_spec("Crypto")
        folder = Path(next(iter(spec.submodule_search_locations))) / "Hash" if spec and spec.submodule_search_locations else None
        library = next(iter(sorted(folder.glob("_keccak*.so")) + sorted(folder.glob("_keccak*.pyd")))) if folder else None
        if library is None:
            raise ImportError("no compiled keccak")
        lib = ctypes.CDLL(str(library))
        lib.keccak_init.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_ubyte]
        lib.keccak_absorb.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.keccak_digest.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_ubyte]
        lib.keccak_destroy.argtypes = [ctypes.c_void_p]

        def keccak256(data: bytes) -> bytes:
            state = ctypes.c_void_p()
            if lib.keccak_init(ctypes.byref(state), 64, 24):
                raise MemoryError("keccak_init failed")
            try:
                out = ctypes.create_string_buffer(32)
                if lib.keccak_absorb(state, data, len(data)) or lib.keccak_digest(state, out, 32, 0x01):
                    raise ValueError("keccak failed")
                return out.raw
            finally:
                lib.keccak_destroy(state)

        if keccak256(b"") != bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"):
            raise ImportError("the compiled keccak does not give Keccak-256")
        return keccak256
    except (ImportError, OSError, AttributeError, StopIteration, ValueError, MemoryError):
        pass
    try:  # pycryptodome's own wrapper
        from Crypto.Hash import keccak as _k

        def wrapped(data: bytes) -> bytes:
            return bytes(_k.new(data=data, digest_bits=256).digest())

        return wrapped
    except ImportError:  # pragma: no cover - only without pycryptodome
        from eth_hash.auto import keccak as _k2

        return lambda data: bytes(_k2(data))


_keccak: Callable[[bytes], bytes] | None = None


def keccak(data: bytes | bytearray | memoryview | str = b"", *, text: str | None = None) -> bytes:
    """Keccak-256 (Ethereum's, not SHA3-256) of bytes, or of ``text`` encoded as UTF-8."""
    global _keccak
    if _keccak is None:
        _keccak = _keccak_backend()
    if text is not None:
        data = text.encode()
    elif isinstance(data, str):
        data = data.encode()
    return _keccak(bytes(data))


def address_bytes(value: Any) -> bytes:
    """An address as 20 bytes (from 20 raw bytes or ``0x`` + 40 hex in any case).

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) == 20:
            return raw
        raise ValueError(f"an address has 20 bytes, got {len(raw)}")
    text = str(value)
    body = text[2:] if text[:2].lower() == "0x" else ""
    if len(body) != 40:
        raise ValueError(f"{text[:80]!r} is not an address (0x + 40 hex digits)")
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise ValueError(f"{text[:80]!r} is not an address (0x + 40 hex digits)") from None


def is_address(value: Any) -> bool:
    """Whether ``value`` is 20 bytes or ``0x`` + 40 hex digits (a mixed-case one must carry a valid checksum)."""
    try:
        raw = address_bytes(value)
    except ValueError:
        return False
    if isinstance(value, str):
        body = value[2:]
        if body != body.lower() and body != body.upper() and checksum_address(raw)[2:] != body:
            return False
    return True


@lru_cache(maxsize=4096)
def _checksum(raw: bytes) -> str:
    lower = raw.hex()
    digest = keccak(lower.encode()).hex()
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(lower, digest))


def checksum_address(value: Any) -> ChecksumAddress:
    """The EIP-55 checksummed form of an address (typed as web3's ``ChecksumAddress``, a ``str``).

    Raises:
        ValueError: not an address.
    """
    return cast("ChecksumAddress", _checksum(address_bytes(value)))


def selector(signature: str) -> bytes:
    """The 4-byte selector of a function or error signature, e.g. ``records(bytes32[])``."""
    return keccak(signature.encode())[:4]


# ----------------------------------------------------------------------------------------------
# types


class _Type:
    """A parsed ABI type; whether it is dynamic and its head size are computed once (decoding a
    records() answer asks them for every word)."""

    __slots__ = ("base", "bits", "size", "item", "length", "parts", "text", "dynamic", "head_size")

    def __init__(self, text: str, base: str, *, bits: int = 0, size: int = 0, item: "_Type | None" = None,
                 length: int | None = None, parts: tuple["_Type", ...] = ()) -> None:
        self.text, self.base, self.bits, self.size, self.item, self.length, self.parts = text, base, bits, size, item, length, parts
        if base == "array" and item is None:
            raise ValueError(f"{text}: an array type needs its item type")
        if base in ("bytes", "string") or (base == "array" and length is None):
            self.dynamic = True
        elif base == "array" and item is not None:
            self.dynamic = item.dynamic
        elif base == "tuple":
            self.dynamic = any(p.dynamic for p in parts)
        else:
            self.dynamic = False
        # Bytes this type takes in its enclosing head (one word when dynamic).
        if self.dynamic:
            self.head_size = _WORD
        elif base == "array" and item is not None and length is not None:  # a fixed-length array of static items
            self.head_size = length * item.head_size
        elif base == "tuple":
            self.head_size = sum(p.head_size for p in parts)
        else:
            self.head_size = _WORD

    @property
    def element(self) -> "_Type":
        """An array's item type (every array type has one)."""
        if self.item is None:
            raise ValueError(f"{self.text} is not an array type")
        return self.item


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p] if text else []


@lru_cache(maxsize=256)
def _parse(text: str) -> _Type:
    text = text.strip()
    if text.endswith("]"):
        open_at = text.rindex("[")
        item, count = _parse(text[:open_at]), text[open_at + 1 : -1]
        return _Type(text, "array", item=item, length=int(count) if count else None)
    if text.startswith("("):
        if not text.endswith(")"):
            raise ValueError(f"unknown ABI type {text!r}")
        return _Type(text, "tuple", parts=tuple(_parse(p) for p in _split_top(text[1:-1])))
    if text in ("address", "bool", "string", "bytes"):
        return _Type(text, text)
    for base in ("uint", "int"):
        if text.startswith(base) and text[len(base):].isdigit():
            bits = int(text[len(base):])
            if not (0 < bits <= 256 and bits % 8 == 0):
                raise ValueError(f"unknown ABI type {text!r}")
            return _Type(text, base, bits=bits)
    if text.startswith("bytes") and text[5:].isdigit() and 0 < int(text[5:]) <= 32:
        return _Type(text, "fixed", size=int(text[5:]))
    raise ValueError(f"unknown ABI type {text!r}")


# ----------------------------------------------------------------------------------------------
# decoding


class _Reader:
    """Bounds-checked reads over one answer."""

    __slots__ = ("data", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.what = data, what

    def fail(self, why: str) -> AbiDecodeError:
        return AbiDecodeError(f"{self.what} does not decode: {why}")

    def word(self, at: int) -> bytes:
        if at < 0 or at + _WORD > len(self.data):
            raise self.fail(f"it is truncated (a word at byte {at:,} of {len(self.data):,})")
        return self.data[at : at + _WORD]

    def uint(self, at: int) -> int:
        return int.from_bytes(self.word(at), "big")

    def offset(self, at: int, base: int) -> int:
        """An offset word at ``at``, relative to ``base``, that must point inside the answer."""
        value = self.uint(at)
        if value > len(self.data) - base or value % _WORD:
            raise self.fail(f"an offset ({value:,}) points outside its {len(self.data) - base:,} bytes")
        return base + value


def _decode_one(r: _Reader, t: _Type, at: int, depth: int) -> Any:
    if depth > 16:
        raise r.fail("nesting deeper than 16")
    base = t.base
    if base == "uint":
        value = r.uint(at)
        if value >> t.bits:
            raise r.fail(f"a {t.text} holds {value:#x}, wider than {t.bits} bits")
        return value
    if base == "int":
        value = int.from_bytes(r.word(at), "big", signed=True)
        if not -(1 << (t.bits - 1)) <= value < (1 << (t.bits - 1)):
            raise r.fail(f"an {t.text} holds {value}, wider than {t.bits} bits")
        return value
    if base == "bool":
        value = r.uint(at)
        if value > 1:
            raise r.fail(f"a bool holds {value:#x}")
        return value == 1
    if base == "address":
        word = r.word(at)
        if any(word[:12]):
            raise r.fail(f"an address has bits set above its 160 ({word.hex()})")
        return _checksum(word[12:])
    if base == "fixed":
        word = r.word(at)
        if any(word[t.size :]):
            raise r.fail(f"a {t.text} has non-zero padding")
        return word[: t.size]
    if base in ("bytes", "string"):
        length = r.uint(at)
        if length > len(r.data) - at - _WORD:
            raise r.fail(f"a {base} of {length:,} bytes does not fit in the {len(r.data) - at - _WORD:,} that follow")
        start = at + _WORD
        padded = -(-length // _WORD) * _WORD
        if start + padded > len(r.data):
            raise r.fail(f"a {base} of {length:,} bytes lacks its padding")
        raw = r.data[start : start + length]
        if any(r.data[start + length : start + padded]):
            raise r.fail(f"a {base} has non-zero padding")
        if base == "string":
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise r.fail("a string is not UTF-8") from None
        return raw
    if base == "array":
        item = t.element
        if t.length is None:
            count = r.uint(at)
            at += _WORD
        else:
            count = t.length
        # Each item takes at least its head size: a count the rest of the answer cannot hold is a lie,
        # refused before anything is allocated.
        if count * item.head_size > len(r.data) - at:
            raise r.fail(f"an array claims {count:,} items, more than its {len(r.data) - at:,} bytes can hold")
        return tuple(_decode_sequence(r, [item] * count, at, depth + 1))
    if base == "tuple":
        return tuple(_decode_sequence(r, list(t.parts), at, depth + 1))
    raise r.fail(f"unknown type {t.text}")  # pragma: no cover - _parse refuses it first


def _decode_sequence(r: _Reader, types: Sequence[_Type], base: int, depth: int) -> list[Any]:
    """A head/tail-encoded sequence starting at ``base`` (dynamic members' offsets count from it)."""
    out: list[Any] = []
    at = base
    for t in types:
        if t.dynamic:
            out.append(_decode_one(r, t, r.offset(at, base), depth))
        else:
            out.append(_decode_one(r, t, at, depth))
        at += t.head_size
    return out


def decode(types: Sequence[str], data: bytes | bytearray | memoryview, *, what: str = "an ABI-encoded answer",
           exact: bool = False) -> tuple[Any, ...]:
    """Decode ABI-encoded ``data`` as the tuple of ``types``.

    Args:
        types: ABI type strings, e.g. ``["(string,uint8)[]"]``.
        data: the encoded bytes (a call's answer, an event's data).
        what: how to name the data in an error (``the answer of http://… to records()``).
        exact: refuse bytes beyond what the types use (only meaningful for static types).

    Raises:
        AbiDecodeError: truncated, an offset or length out of range, a value wider than its type,
        non-zero padding, a string that is not UTF-8.
    """
    parsed = [_parse(t) for t in types]
    r = _Reader(bytes(data), what)
    values = tuple(_decode_sequence(r, parsed, 0, 0))
    if exact and not any(t.dynamic for t in parsed) and len(r.data) != sum(t.head_size for t in parsed):
        raise r.fail(f"it has {len(r.data):,} bytes where its types take {sum(t.head_size for t in parsed):,}")
    return values


# ----------------------------------------------------------------------------------------------
# encoding (the calldata of the views the read path calls; values are ours, not hostile)


def _encode_one(t: _Type, value: Any) -> bytes:
    base = t.base
    if base == "uint":
        number = int(value)
        if number < 0 or number >> t.bits:
            raise ValueError(f"{number} does not fit a {t.text}")
        return number.to_bytes(_WORD, "big")
    if base == "int":
        return int(value).to_bytes(_WORD, "big", signed=True)
    if base == "bool":
        return (1 if value else 0).to_bytes(_WORD, "big")
    if base == "address":
        return bytes(12) + address_bytes(value)
    if base == "fixed":
        if isinstance(value, (int, str)):  # bytes(32) would be 32 zero bytes: never a silent guess
            raise TypeError(f"a {t.text} is given as bytes, not {type(value).__name__}")
        raw = bytes(value)
        if len(raw) != t.size:
            raise ValueError(f"a {t.text} has {t.size} bytes, got {len(raw)}")
        return raw + bytes(_WORD - t.size)
    if base in ("bytes", "string"):
        raw = value.encode() if base == "string" else bytes(value)
        return len(raw).to_bytes(_WORD, "big") + raw + bytes(-len(raw) % _WORD)
    if base == "array":
        items = list(value)
        if t.length is not None and len(items) != t.length:
            raise ValueError(f"a {t.text} has {t.length} items, got {len(items)}")
        body = _encode_sequence([t.element] * len(items), items)
        return body if t.length is not None else len(items).to_bytes(_WORD, "big") + body
    if base == "tuple":
        return _encode_sequence(list(t.parts), list(value))
    raise ValueError(f"unknown type {t.text}")  # pragma: no cover


def _encode_sequence(types: Sequence[_Type], values: Sequence[Any]) -> bytes:
    if len(types) != len(values):
        raise ValueError(f"{len(types)} types for {len(values)} values")
    heads: list[bytes] = []
    tails: list[bytes] = []
    head_size = sum(t.head_size for t in types)
    for t, v in zip(types, values):
        encoded = _encode_one(t, v)
        if t.dynamic:
            heads.append((head_size + sum(len(x) for x in tails)).to_bytes(_WORD, "big"))
            tails.append(encoded)
        else:
            heads.append(encoded)
    return b"".join(heads) + b"".join(tails)


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """ABI-encode ``values`` as the tuple of ``types`` (what ``abi.encode`` gives in Solidity)."""
    return _encode_sequence([_parse(t) for t in types], list(values))


def encode_call(name: str, types: Sequence[str], values: Sequence[Any] = ()) -> bytes:
    """Calldata: the selector of ``name(types)`` then the encoded arguments."""
    return selector(f"{name}({','.join(types)})") + encode(types, values)
