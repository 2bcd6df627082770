"""``read_utf8``: the one reader of user text files (TOML configs, CSV / TSV tables, caption and
annotation files). It lives at the config layer so that both ``config`` (TOML) and ``data``
(every text reader) can use it.

Only a regular file is read (a folder or a FIFO is an error, never a hang); a leading UTF-8 BOM
is dropped; a byte that is not UTF-8 (Latin-1, UTF-16, binary data) is an error naming the file
and the line of the first bad byte.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from clipspace.errors import ClipspaceError, DataError


def check_regular_file(path: Path, what: str = "file",
                       error: type[ClipspaceError] = DataError) -> None:
    """``error`` unless ``path`` is a regular file: not found / a directory / not a regular
    file (a FIFO, socket or device), each named."""
    if path.is_file():
        return
    if path.is_dir():
        raise error(f"{path}: is a directory, expected a {what}")
    if path.exists():
        raise error(f"{path}: not a regular file (a FIFO, socket or device), expected a {what}")
    raise error(f"{path}: {what} not found")


def decode_utf8(data: bytes, path: Path, error: type[ClipspaceError] = DataError) -> str:
    """``data`` as text (a leading BOM dropped); ``error`` naming the line of the first byte
    that is not UTF-8."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"{path}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x}); "
                    "save the file as UTF-8") from None


def read_utf8(path: str | Path, what: str = "file",
              error: type[ClipspaceError] = DataError) -> str:
    """The text of the regular file ``path`` (a leading BOM dropped); ``error`` (``DataError``
    by default) naming the file, and the line of a non-UTF-8 byte."""
    path = Path(path)
    check_regular_file(path, what, error)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    return decode_utf8(data, path, error)


__all__ = ["check_regular_file", "decode_utf8", "read_utf8"]
