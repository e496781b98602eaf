"""Open a module file, compressed or not, choosing the format by magic bytes.

Like kmod (libkmod-file.c) the extension is not trusted: ``foo.ko`` may be xz and
``foo.ko.gz`` may be plain ELF. Decompression is bounded so that a small hostile file
cannot expand into gigabytes (a "compression bomb").
"""

from __future__ import annotations

import lzma
import mmap
import os
import stat
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from abicheck.errors import ModuleReadError

MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd\x37\x7a\x58\x5a\x00", "xz"),
    (b"\x1f\x8b", "gzip"),
)

# The largest in-tree module of Debian 6.1 is about 20 MiB stripped; with full debug
# info some reach a few hundred MiB. Beyond this a "module" is a bomb or a mistake.
DEFAULT_LIMIT = 1 << 30


@dataclass(frozen=True, slots=True)
class RawModule:
    data: bytes | mmap.mmap
    file_size: int
    compression: str | None


def sniff(head: bytes) -> str | None:
    for magic, name in MAGICS:
        if head.startswith(magic):
            return name
    return None


_NOT_REGULAR = (
    (stat.S_ISDIR, "is a directory, not a module file"),
    (stat.S_ISFIFO, "is not a regular file (a FIFO)"),
    (stat.S_ISCHR, "is not a regular file (a character device)"),
    (stat.S_ISBLK, "is not a regular file (a block device)"),
    (stat.S_ISSOCK, "is not a regular file (a socket)"),
)


def not_regular(mode: int) -> str | None:
    """Why a file of this st_mode is not read as a module, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((why for test, why in _NOT_REGULAR if test(mode)), "is not a regular file")


def open_regular(path: str) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file.

    O_NONBLOCK because a plain open() of a FIFO waits forever for a writer; fstat() on the
    opened descriptor (not stat() on the path) because the path may change in between.
    /dev/zero and friends would otherwise read as endless or empty "modules".
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        why = not_regular(os.fstat(fd).st_mode)
        if why is not None:
            raise ModuleReadError(path, why)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_module_bytes(path: str, limit: int = DEFAULT_LIMIT) -> RawModule:
    try:
        with open_regular(path) as f:
            head = f.read(8)
            size = f.seek(0, 2)
            f.seek(0)
            kind = sniff(head)
            if kind is None:
                if size == 0:
                    return RawModule(b"", 0, None)
                # An uncompressed module is mapped, not read: most checks touch only a
                # few small sections and debug info can be most of the file.
                return RawModule(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), size, None)
            packed = f.read()
    except IsADirectoryError:
        raise ModuleReadError(path, "is a directory, not a module file") from None
    except FileNotFoundError:
        raise ModuleReadError(path, "no such file") from None
    except PermissionError:
        raise ModuleReadError(path, "permission denied") from None
    except OSError as e:
        raise ModuleReadError(path, f"cannot read: {e.strerror or e}") from None
    return RawModule(decompress(path, packed, kind, limit), size, kind)


def decompress(path: str, packed: bytes, kind: str, limit: int = DEFAULT_LIMIT) -> bytes:
    try:
        if kind == "gzip":
            out = _gunzip(packed, limit)
        elif kind == "xz":
            out = _unxz(packed, limit)
        else:
            out = _unzstd(packed, limit)
    except _TooBig:
        raise ModuleReadError(
            path,
            f"{kind} data expands beyond {limit >> 20} MiB; refusing to decompress "
            "(a compression bomb, or raise --max-module-size)",
        ) from None
    except (zlib.error, lzma.LZMAError, EOFError, ValueError) as e:
        raise ModuleReadError(path, f"corrupt {kind} data: {e}") from None
    except Exception as e:  # zstandard raises its own ZstdError
        if type(e).__name__ == "ZstdError":
            raise ModuleReadError(path, f"corrupt zstd data: {e}") from None
        raise
    return out


class _TooBig(Exception):
    pass


def _gunzip(packed: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=31)
    out = d.decompress(packed, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise _TooBig
    if not d.eof:
        raise EOFError("truncated gzip stream")
    return out


def _unxz(packed: bytes, limit: int) -> bytes:
    d = lzma.LZMADecompressor()
    out = d.decompress(packed, max_length=limit + 1)
    if len(out) > limit or (not d.eof and not d.needs_input):
        raise _TooBig
    if not d.eof:
        raise EOFError("truncated xz stream")
    return out


def _unzstd(packed: bytes, limit: int) -> bytes:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a declared dependency
        raise ValueError("the zstandard package is not installed") from None
    reader = zstandard.ZstdDecompressor().stream_reader(packed, read_across_frames=True)
    out = reader.read(limit + 1)
    if len(out) > limit:
        raise _TooBig
    if len(out) == 0 and packed:
        raise EOFError("empty or truncated zstd stream")
    return out
