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


# -- arm64: the raw Image, Image.gz, and the EFI zboot image ---------------------------------

# arch/arm64/include/asm/image.h: struct arm64_image_header, magic "ARM\x64" at 0x38.
ARM64_MAGIC_AT = 0x38
ARM64_MAGIC = b"ARM\x64"
# drivers/firmware/efi/libstub/zboot-header.S: "MZ", 2 bytes, "zimg", then le32 payload
# offset and size, 8 reserved bytes, and the compression's name (NUL-terminated) at 0x18.
_ZBOOT_TYPE_AT = 4
_ZBOOT_COMP_AT = 0x18
_ZBOOT_NAMES = {
    "gzip": "gzip",
    "lzma": "lzma",
    "xz": "xz",
    "lz4": "lz4",
    "lzo": "lzo",
    "zstd": "zstd",
    "bzip2": "bzip2",
}


def is_arm64_image(data: bytes | memoryview) -> bool:
    return bytes(data[ARM64_MAGIC_AT : ARM64_MAGIC_AT + 4]) == ARM64_MAGIC


def arm64_image(data: bytes, limit: int = DEFAULT_LIMIT) -> bytes | None:
    """The raw arm64 Image in ``data``: the file itself (Debian's vmlinuz), a gzip'ed
    Image (Image.gz), or the payload of an EFI zboot image (CONFIG_EFI_ZBOOT); None when
    ``data`` is none of these."""
    if is_arm64_image(data):
        return data
    if data[:2] == b"MZ" and data[_ZBOOT_TYPE_AT : _ZBOOT_TYPE_AT + 4] == b"zimg":
        offset, size = struct.unpack_from("<II", data, 8)
        name = (
            data[_ZBOOT_COMP_AT : _ZBOOT_COMP_AT + 16].split(b"\0", 1)[0].decode("ascii", "replace")
        )
        kind = _ZBOOT_NAMES.get(name)
        if kind is None:
            raise VmlinuzError(
                f"EFI zboot image compressed with {name!r}, which abicheck cannot read"
            )
        if offset + size > len(data):
            raise VmlinuzError("EFI zboot payload runs past the end of the file: truncated")
        image = _arm64_payload(kind, memoryview(data)[offset : offset + size], limit)
    elif data[:3] == b"\x1f\x8b\x08":
        image = _arm64_payload("gzip", memoryview(data), limit)
    else:
        return None
    if not is_arm64_image(image):
        raise VmlinuzError("the compressed payload is not an arm64 Image (no ARM\\x64 magic)")
    return image


def _arm64_payload(kind: str, src: memoryview, limit: int) -> bytes:
    try:
        return _decompress(kind, src, limit, partial=False)
    except _TooBig:
        raise VmlinuzError(
            f"the {kind} payload expands beyond {limit >> 20} MiB (a compression bomb?)"
        ) from None
    except _Corrupt as e:
        raise VmlinuzError(f"the {kind} payload: {e}") from None


# The BTF header (include/uapi/linux/btf.h): magic 0xeB9F, version 1, flags, hdr_len 24,
# then type_off, type_len, str_off, str_len.
_BTF_HEAD = struct.Struct("<HBBIIIII")


def btf_in_image(image: bytes) -> bytes | None:
    """The kernel's ``.BTF`` inside a raw Image, which has no section table: the first
    BTF header whose lengths fit the file and whose string table starts with NUL and
    names ``module``. The kernel's own BTF is the only blob in an Image of that shape."""
    at = image.find(b"\x9f\xeb\x01\x00")
    while at >= 0:
        if at + _BTF_HEAD.size <= len(image):
            _m, _v, _f, hdr_len, type_off, type_len, str_off, str_len = _BTF_HEAD.unpack_from(
                image, at
            )
            end = at + hdr_len + max(type_off + type_len, str_off + str_len)
            strings = at + hdr_len + str_off
            if (
                hdr_len == 24
                and type_off + type_len <= str_off
                and end <= len(image)
                and str_len > 0
                and image[strings] == 0
                and image.find(b"\0module\0", strings, strings + str_len) >= 0
            ):
                return image[at:end]
        at = image.find(b"\x9f\xeb\x01\x00", at + 1)
    return None
