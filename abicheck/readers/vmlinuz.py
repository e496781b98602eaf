"""Decompress a bzImage (vmlinuz) to the vmlinux ELF inside it.

Like the kernel's ``scripts/extract-vmlinux``: find a compressed stream whose output
starts with the ELF magic. The x86 boot protocol (2.08+) says where the payload is
(``payload_offset``/``payload_length`` in the setup header, Documentation/arch/x86/
boot.rst), so that candidate is tried first; then every offset where a compression
magic occurs, in extract-vmlinux's order. A stream is probed for a few bytes before it
is decompressed whole, so false magics in compressed data cost little.

Output is bounded (``limit``) so a small hostile file cannot expand into gigabytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from abicheck.readers.compressed import DecodeErrors, MissingDecoder, TooBig, inflate

ELFMAG = b"\x7fELF"

# A Debian 6.12 vmlinux with BTF is about 55 MiB; a distribution kernel with every
# driver built in stays well under this. Past it the file is a bomb or a mistake.
DEFAULT_LIMIT = 512 << 20

# extract-vmlinux's order; every compression arch/x86/boot/compressed offers (KERNEL_*).
MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd\x37\x7a\x58\x5a\x00", "xz"),
    (b"\x42\x5a\x68", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x89LZO\x00", "lzo"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)

# Setup header fields (arch/x86/include/uapi/asm/bootparam.h, struct setup_header).
_SETUP_SECTS = 0x1F1
_HDRS_MAGIC_AT = 0x202
_VERSION_AT = 0x206
_PAYLOAD_AT = 0x248  # payload_offset, payload_length: both le32, protocol >= 2.08


class VmlinuzError(ValueError):
    """The file holds no vmlinux ELF that can be decompressed."""


class _TooBig(Exception):
    pass


class _Corrupt(Exception):
    pass


class _NoDecoder(_Corrupt):
    """The format is known but its optional decompressor is not installed."""


def read_vmlinux(path: str, limit: int = DEFAULT_LIMIT) -> bytes:
    """The vmlinux ELF image of a vmlinuz, a compressed vmlinux or a plain vmlinux file."""
    try:
        with open(path, "rb") as f:
            # a kernel image is smaller than what it decompresses to; a bigger "image"
            # is a mistake, and reading it whole would cost its size in memory
            if os.fstat(f.fileno()).st_size > limit:
                raise VmlinuzError(f"{path}: larger than {limit >> 20} MiB: not a kernel image")
            data = f.read()
    except OSError as e:
        raise VmlinuzError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return extract_vmlinux(data, limit)
    except VmlinuzError as e:
        raise VmlinuzError(f"{path}: {e}") from None


def extract_vmlinux(data: bytes, limit: int = DEFAULT_LIMIT) -> bytes:
    """The vmlinux ELF inside ``data``; ``data`` itself when it already is an ELF file."""
    if data[:4] == ELFMAG:
        return data
    problems: list[str] = []
    for offset, end, kind in candidates(data):
        src = memoryview(data)[offset:end]
        try:
            if _decompress(kind, src, len(ELFMAG), partial=True) != ELFMAG:
                continue
        except _NoDecoder as e:
            problems.append(f"{kind} stream at {offset:#x}: {e}")
            continue
        except _Corrupt:
            continue  # a false magic inside compressed data: the usual case
        try:
            return _decompress(kind, src, limit, partial=False)
        except _TooBig:
            problems.append(
                f"{kind} stream at {offset:#x} expands beyond {limit >> 20} MiB "
                "(a compression bomb, or raise the limit)"
            )
        except _Corrupt as e:
            problems.append(f"{kind} stream at {offset:#x}: {e}")
    if problems:
        raise VmlinuzError("cannot decompress the kernel: " + "; ".join(problems))
    raise VmlinuzError(
        "no compressed vmlinux found (no gzip, xz, bzip2, lzma, lzo, lz4 or zstd stream "
        "that decompresses to an ELF file): not a vmlinuz?"
    )


def candidates(data: bytes) -> Iterator[tuple[int, int, str]]:
    """(start, end, compression) of the streams to try, the boot protocol's payload
    first; a stream found by its magic alone runs to the end of the data."""
    seen: set[int] = set()
    payload = _boot_payload(data)
    if payload is not None:
        seen.add(payload[0])
        yield payload
    for magic, kind in MAGICS:
        at = data.find(magic)
        while at >= 0:
            if at not in seen:
                seen.add(at)
                yield at, len(data), kind
            at = data.find(magic, at + 1)


def _boot_payload(data: bytes) -> tuple[int, int, str] | None:
    if len(data) < _PAYLOAD_AT + 8 or data[_HDRS_MAGIC_AT : _HDRS_MAGIC_AT + 4] != b"HdrS":
        return None
    (version,) = struct.unpack_from("<H", data, _VERSION_AT)
    if version < 0x208:
        return None
    # setup_sects 0 means 4 (boot.rst); the protected-mode kernel follows the boot sector.
    setup_sects = data[_SETUP_SECTS] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, _PAYLOAD_AT)
    start = (setup_sects + 1) * 512 + payload_offset
    # the payload ends with the le32 decompressed size the build appends; past it comes
    # more of the decompressor, which a format without an end marker (lz4) would misread
    end = min(start + payload_length, len(data))
    for magic, kind in MAGICS:
        if data.startswith(magic, start):
            return start, end, kind
    return None


def _decompress(kind: str, src: memoryview, limit: int, partial: bool) -> bytes:
    """At most ``limit`` bytes of the stream at ``src``.

    ``partial``: stop quietly at ``limit`` (a probe); otherwise more output than
    ``limit`` is :class:`_TooBig` and a stream that ends early is :class:`_Corrupt`.
    """
    problem, too_big = None, False
    try:
        return inflate(kind, src, limit, partial)
    except TooBig:
        too_big = True
    except MissingDecoder as e:
        raise _NoDecoder(f"{kind}-compressed kernel: {e}") from None
    except DecodeErrors as e:
        problem = f"corrupt {kind} data: {e}"
    except Exception as e:  # zstandard and lz4 raise their own error types
        if type(e).__name__ not in ("ZstdError", "LZ4BlockError", "error"):
            raise
        problem = f"corrupt {kind} data: {e}"
    # raised outside the except blocks, so that no traceback keeps the decoder's buffers
    if too_big:
        raise _TooBig
    raise _Corrupt(problem or f"corrupt {kind} data")
