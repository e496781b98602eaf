"""The config a kernel image carries with CONFIG_IKCONFIG.

kernel/configs.c embeds ``IKCFG_ST`` + the gzip of .config + ``IKCFG_ED`` in the image
(``kernel/config_data.gz`` through ``.incbin``); scripts/extract-ikconfig finds the
start marker and gunzips what follows. This does the same on a vmlinux (or any ELF, such
as configs.ko), a bzImage (decompressed first), or raw bytes.
"""

from __future__ import annotations

import gzip
import zlib

from abicheck.errors import AbicheckError

START = b"IKCFG_ST"
END = b"IKCFG_ED"
ELFMAG = b"\x7fELF"
_LIMIT = 16 << 20  # a distribution .config is ~250 KiB; more is not a config


class NoEmbeddedConfig(AbicheckError):
    """The image has no IKCONFIG block."""


def config_from_bytes(data: bytes, label: str) -> str:
    """The .config text embedded in ``data`` (a vmlinux, a bzImage, a module)."""
    found = _find(data)
    if found is not None:
        return found
    if not data.startswith(ELFMAG):
        from abicheck.readers.vmlinuz import VmlinuzError, extract_vmlinux

        try:
            vmlinux = extract_vmlinux(data)
        except VmlinuzError:
            vmlinux = b""
        found = _find(vmlinux) if vmlinux else None
        if found is not None:
            return found
    raise NoEmbeddedConfig(
        label,
        "no embedded config (IKCFG_ST marker): the kernel was built without "
        "CONFIG_IKCONFIG (Debian's kernels are)",
    )


def _find(data: bytes) -> str | None:
    start = data.find(START)
    while start >= 0:
        begin = start + len(START)
        if data[begin : begin + 2] == b"\x1f\x8b":
            end = data.find(END, begin)
            blob = data[begin : end if end > 0 else begin + _LIMIT]
            text = _gunzip(blob)
            if text is not None:
                return text
        start = data.find(START, start + 1)
    return None


def _gunzip(blob: bytes) -> str | None:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(blob, _LIMIT)
    except zlib.error:
        return None
    if not d.eof and d.unconsumed_tail:
        return None  # beyond the limit: not a config
    return out.decode("utf-8", errors="replace")


def embed(config_text: str) -> bytes:
    """The block kernel/configs.c builds: for fixtures and tests."""
    return START + gzip.compress(config_text.encode(), mtime=0) + END
