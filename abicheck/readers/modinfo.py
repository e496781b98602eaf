"""The ``.modinfo`` section: NUL-separated ``key=value`` strings, keys may repeat."""

from __future__ import annotations


def parse_modinfo(data: bytes) -> tuple[tuple[str, str], ...]:
    """All entries in section order, as the kernel's get_next_modinfo() walks them.

    Strings without ``=`` are skipped: the kernel only matches ``tag=``.
    """
    out = []
    for raw in data.split(b"\0"):
        if not raw:
            continue
        key, eq, value = raw.partition(b"=")
        if not eq:
            continue
        out.append((key.decode("utf-8", "replace"), value.decode("utf-8", "replace")))
    return tuple(out)
