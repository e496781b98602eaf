"""The ``__versions`` section: an array of ``struct modversion_info``.

``struct modversion_info { unsigned long crc; char name[MODULE_NAME_LEN]; }`` with
``MODULE_NAME_LEN = 64 - sizeof(unsigned long)``: 64-byte records on every arch, the CRC
taking 8 bytes on 64-bit and 4 on 32-bit. The kernel reads ``sh_size / 64`` records.
"""

from __future__ import annotations

import struct

from abicheck.model import VersionEntry

RECORD_SIZE = 64


def parse_versions(data: bytes, word: int, endian: str) -> tuple[VersionEntry, ...]:
    fmt = endian + ("Q" if word == 8 else "I") + f"{RECORD_SIZE - word}s"
    whole = len(data) - len(data) % RECORD_SIZE
    # modpost NUL-pads each name; the kernel compares up to the first NUL
    return tuple(
        [
            VersionEntry(name.split(b"\0", 1)[0].decode("utf-8", "replace"), crc)
            for crc, name in struct.iter_unpack(fmt, data[:whole])
        ]
    )


def parse_ext_versions(crcs: bytes, names: bytes, endian: str) -> tuple[VersionEntry, ...]:
    """``__version_ext_crcs`` (an array of s32) and ``__version_ext_names`` (the names,
    NUL-separated, in the same order), as mainline modpost writes them for symbols whose
    names do not fit the 56 bytes of struct modversion_info."""
    values = [c for (c,) in struct.iter_unpack(endian + "I", crcs[: len(crcs) - len(crcs) % 4])]
    labels = [n.decode("utf-8", "replace") for n in names.split(b"\0")]
    return tuple(VersionEntry(name, crc) for name, crc in zip(labels, values, strict=False))
