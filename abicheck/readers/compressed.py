"""Open a module file, compressed or not, choosing the format by magic bytes.

Like kmod (libkmod-file.c) the extension is not trusted: ``foo.ko`` may be xz and
``foo.ko.gz`` may be plain ELF. Decompression is streamed in bounded steps and stops at a
limit, so that a small hostile file cannot expand into gigabytes (a "compression bomb");
the same bounded decoders serve kernel images (vmlinuz.py) and profiles (profile.py).
"""

from __future__ import annotations

import bz2
import functools
import lzma
import mmap
import os
import stat
import struct
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, BinaryIO

from abicheck.errors import ModuleReadError

MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd\x37\x7a\x58\x5a\x00", "xz"),
    (b"\x1f\x8b", "gzip"),
)

# The file names of kernel modules, plain or compressed (kmod's own list, as depmod
# looks for them); the contents are still told apart by magic bytes, not by these.
MODULE_SUFFIXES = (".ko", ".ko.gz", ".ko.xz", ".ko.zst")

# Per module. The largest Debian module is amdgpu.ko: 19 MiB in 6.1, 28 MiB (from a
# 4 MiB .ko.xz) in 6.12; out-of-tree modules with debug info stay well under 100 MiB.
# A bomb costs this much per worker (plus the decoder's window, up to 128 MiB for zstd):
# measured on 4 zstd bombs at -j 4, 1 GiB gave 7.7 GiB, 256 MiB 1.7 GiB summed over the
# workers, this 128 MiB stays under 1.5 GiB. --max-module-size raises it for one run.
DEFAULT_LIMIT = 128 << 20

# Past this much output a decompression holds the run's "large" gate (see large_gate()):
# every real module but amdgpu stays under it, so workers decompress in parallel, while
# bombs (and amdgpu) expand one at a time. Peak memory is then about
# jobs x (2 x LARGE_FROM + interpreter) + 2 x limit, not jobs x 2 x limit.
LARGE_FROM = 24 << 20
MODULE_ZSTD_WINDOW = 32 << 20
_large_gate: Any = None  # a lock shared by a run's worker processes, set by the runner


def set_large_gate(gate: Any) -> None:
    """Share ``gate`` (a multiprocessing lock, inherited through fork) between the
    workers of a run: only its holder may decompress past LARGE_FROM bytes."""
    global _large_gate
    _large_gate = gate


# Output per decompression step: the bigger, the fewer Python-level steps; the smaller,
# the less a bomb allocates past the limit before it is caught.
_STEP = 4 << 20
# zstd and lz4 decoders take no output bound: their input is fed in small pieces instead.
# zstd expands at most ~128 KiB per 4 input bytes (an RLE block), so 256 bytes in keep one
# step under 8 MiB.
_ZSTD_IN = 256
_LZ4_BLOCK_MAX = 8 << 20  # the kernel's lz4 legacy format: 8 MiB per block
_LZ4_MAGIC = 0x184C2102
_LZO_BLOCK_MAX = 64 << 20  # lzop writes 256 KiB blocks; a bigger one is corrupt


@dataclass(frozen=True, slots=True)
class RawModule:
    data: bytes | mmap.mmap
    file_size: int
    compression: str | None


class TooBig(Exception):
    """The data expands beyond the limit."""


class Truncated(EOFError):
    pass


class MissingDecoder(ValueError):
    """The format is known but its optional decompressor is not installed."""


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
    problem = None
    try:
        return inflate(kind, packed, limit, module=True)
    except TooBig:
        problem = (
            f"{kind} data expands beyond {limit >> 20} MiB; refusing to decompress "
            "(a compression bomb, or raise --max-module-size)"
        )
    except DecodeErrors as e:
        problem = f"corrupt {kind} data: {e}"
    except Exception as e:  # zstandard raises its own ZstdError
        if type(e).__name__ != "ZstdError":
            raise
        problem = f"corrupt zstd data: {e}"
    # raised here, outside the except blocks: an exception raised inside one keeps the
    # one it replaces as __context__, whose traceback holds the frames and their buffers
    raise ModuleReadError(path, problem)


DecodeErrors = (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError, struct.error)


def inflate(
    kind: str,
    packed: bytes | memoryview,
    limit: int,
    partial: bool = False,
    module: bool = False,
) -> bytes:
    """The data ``packed`` decompresses to, at most ``limit`` bytes.

    ``partial``: stop quietly after ``limit`` bytes (a probe of the first bytes);
    otherwise more output is :class:`TooBig` and a stream cut short is
    :class:`Truncated`. Format errors are those of the decoder (see ``DecodeErrors``).
    """
    parts: list[bytes] = []
    size = 0
    # a probe for a few bytes decodes only a few bytes
    stream = _STREAMS[kind]
    if module and kind == "zstd":
        stream = functools.partial(_zstd, window=MODULE_ZSTD_WINDOW)
    chunks = stream(memoryview(packed), min(_STEP, limit + 1))
    held = None
    try:
        for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                if partial:
                    break
                parts.clear()  # freed now, not when the caller's exception is gone
                raise TooBig
            if held is None and size > LARGE_FROM and _large_gate is not None:
                held = _large_gate
                held.acquire()
    finally:
        chunks.close()
        if held is not None:
            held.release()
    out = parts[0] if len(parts) == 1 else b"".join(parts)
    return out[:limit] if partial else out


def _gzip(src: memoryview, step: int) -> Generator[bytes, None, None]:
    d = zlib.decompressobj(wbits=31)
    data: bytes | memoryview = src
    while not d.eof:
        chunk = d.decompress(data, step)
        data = d.unconsumed_tail
        if chunk:
            yield chunk
        elif not data:
            raise Truncated("truncated gzip stream")


def _lzma_like(
    make: Callable[[], lzma.LZMADecompressor | bz2.BZ2Decompressor],
) -> Callable[[memoryview, int], Generator[bytes, None, None]]:
    def run(src: memoryview, step: int) -> Generator[bytes, None, None]:
        d = make()
        data: bytes | memoryview = src
        while not d.eof:
            chunk = d.decompress(data, max_length=step)
            data = b""
            if chunk:
                yield chunk
            elif d.needs_input:
                raise Truncated("truncated stream")

    return run


def _zstd(src: memoryview, step: int, window: int = 0) -> Generator[bytes, None, None]:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a declared dependency
        raise MissingDecoder("the zstandard package is not installed") from None
    # The window a frame asks for is memory the decoder allocates before any output. A
    # kernel image made with `zstd -22 --ultra` may use 128 MiB (the zstd default cap);
    # modules (Kbuild's `zstd -T0`, level 3) use a few MiB, so for them a frame asking
    # more than 32 MiB is refused (see decompress()).
    d = zstandard.ZstdDecompressor(max_window_size=window).decompressobj()
    at = 0
    while not d.eof:
        if at >= len(src):
            raise Truncated("truncated zstd stream")
        chunk = d.decompress(src[at : at + _ZSTD_IN])
        at += _ZSTD_IN
        if chunk:
            yield chunk


def _lz4(src: memoryview, step: int) -> Generator[bytes, None, None]:
    """The kernel's lz4 "legacy" format (lib/decompress_unlz4.c): magic, then blocks of
    le32 compressed size + data, each expanding to at most 8 MiB. The format has no end
    marker: it ends with the data, or with the le32 size the kernel build appends."""
    try:
        import lz4.block
    except ImportError:
        raise MissingDecoder("lz4 data: install the python lz4 package") from None
    if len(src) < 4 or struct.unpack_from("<I", src, 0)[0] != _LZ4_MAGIC:
        raise ValueError("no lz4 legacy magic")
    at, blocks = 4, 0
    while at + 4 <= len(src):
        (chunk,) = struct.unpack_from("<I", src, at)
        if chunk == _LZ4_MAGIC:  # concatenated archives repeat the magic
            at += 4
            continue
        if at + 4 + chunk > len(src):
            if blocks and len(src) - at == 4:
                return  # the appended decompressed size
            raise Truncated(f"truncated: lz4 block at {at:#x} is cut short")
        yield lz4.block.decompress(src[at + 4 : at + 4 + chunk], uncompressed_size=_LZ4_BLOCK_MAX)
        blocks += 1
        at += 4 + chunk
    if not blocks:
        raise Truncated("no lz4 block")


# lzop's header (lib/decompress_unlzo.c, parse_header): the flags that add fields
_LZO_MAGIC = b"\x89LZO\x00\r\n\x1a\n"
_F_ADLER32_D, _F_ADLER32_C, _F_H_FILTER = 0x1, 0x2, 0x800
_F_CRC32_D, _F_CRC32_C = 0x100, 0x200


def _lzo(src: memoryview, step: int) -> Generator[bytes, None, None]:
    """The lzop format the kernel's lzo images use (lib/decompress_unlzo.c): a header,
    then blocks of be32 decompressed size, be32 compressed size, optional checksums and
    data (stored as is when both sizes are equal); a decompressed size of 0 ends it."""
    if bytes(src[:9]) != _LZO_MAGIC:
        raise ValueError("no lzop magic")
    (version,) = struct.unpack_from(">H", src, 9)
    at = 13 + (2 if version >= 0x0940 else 0)  # version, lib version, [needed version]
    at += 1 + (1 if version >= 0x0940 else 0)  # method, [level]
    (flags,) = struct.unpack_from(">I", src, at)
    at += 4 + (4 if flags & _F_H_FILTER else 0) + 4 + 4  # flags, [filter], mode, mtime
    at += 4 if version >= 0x0940 else 0  # mtime high
    at += 1 + src[at] + 4  # name length, name, header checksum
    lzo: Any = None  # python-lzo, imported at the first compressed block
    while True:
        (dst_len,) = struct.unpack_from(">I", src, at)
        at += 4
        if dst_len == 0:
            return
        if dst_len > _LZO_BLOCK_MAX:
            raise ValueError(f"lzo block of {dst_len} bytes")
        (src_len,) = struct.unpack_from(">I", src, at)
        at += 4
        at += 4 * bool(flags & _F_ADLER32_D) + 4 * bool(flags & _F_CRC32_D)
        if src_len < dst_len:
            at += 4 * bool(flags & _F_ADLER32_C) + 4 * bool(flags & _F_CRC32_C)
        if at + src_len > len(src):
            raise Truncated(f"truncated: lzo block at {at:#x} is cut short")
        block = bytes(src[at : at + src_len])
        at += src_len
        if src_len == dst_len:
            yield block
            continue
        if lzo is None:
            try:
                import lzo as lzo_module  # python-lzo: needs liblzo2; lzo kernels are rare
            except ImportError:
                raise MissingDecoder(
                    "lzo data: install the python-lzo package (and liblzo2)"
                ) from None
            lzo = lzo_module
        yield lzo.decompress(block, False, dst_len)


# generators, not mere iterators: inflate() closes the one it stops early
_STREAMS: dict[str, Callable[[memoryview, int], Generator[bytes, None, None]]] = {
    "gzip": _gzip,
    "xz": _lzma_like(lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ)),
    "lzma": _lzma_like(lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE)),
    "bzip2": _lzma_like(bz2.BZ2Decompressor),
    "zstd": _zstd,
    "lz4": _lz4,
    "lzo": _lzo,
}
