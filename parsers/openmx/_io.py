"""Bytes and text of OpenMX files, with transparent gzip (``.gz`` name or gzip magic bytes)."""
from __future__ import annotations

import gzip
import io
import os
import zlib

from ...errors import FormatError

GZIP_MAGIC = b"\x1f\x8b"


def source_name(source) -> str | None:
    """A printable name for a path, file object or bytes (None for anonymous bytes)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else None


def read_bytes(source) -> tuple[bytes | memoryview, str | None]:
    """Whole content of ``source`` (path, bytes-like or binary file object), gunzipped if it
    starts with the gzip magic bytes. Returns ``(data, name)``."""
    name = source_name(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = source
    elif isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise FormatError(name, f"cannot read file ({exc.strerror or exc})") from None
    elif hasattr(source, "read"):
        data = source.read()
        if isinstance(data, str):
            raise FormatError(name, "file object is opened in text mode; open it with 'rb'")
    else:
        raise TypeError(f"expected a path, bytes or a binary file object, got {type(source).__name__}")
    if bytes(data[:2]) == GZIP_MAGIC:
        try:
            data = gzip.decompress(bytes(data))
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError(name, f"corrupted gzip stream ({exc})") from None
    return data, name


def read_text(source) -> tuple[str, str | None]:
    """Text of a (possibly gzipped) file; undecodable bytes are replaced, never fatal."""
    if isinstance(source, io.TextIOBase):
        return source.read(), source_name(source)
    data, name = read_bytes(source)
    return bytes(data).decode("utf-8", errors="replace"), name
