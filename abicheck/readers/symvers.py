"""``Module.symvers``: one exported symbol per line.

Since Linux 5.10 (commit 5190044c2965 "modpost: move the namespace field in
Module.symvers last") the columns are ``CRC<TAB>symbol<TAB>module<TAB>export type
<TAB>namespace``; before that the namespace sat third. The export type is
``EXPORT_SYMBOL`` or ``EXPORT_SYMBOL_GPL``; the module is ``vmlinux`` or an in-tree
module path without ``.ko``.
"""

from __future__ import annotations

from abicheck.model import ExportTable

EXPORT_TYPES = (
    "EXPORT_SYMBOL",
    "EXPORT_SYMBOL_GPL",
    "EXPORT_SYMBOL_GPL_FUTURE",
    "EXPORT_UNUSED_SYMBOL",
    "EXPORT_UNUSED_SYMBOL_GPL",
)


class SymversError(ValueError):
    pass


def parse_symvers(text: str) -> ExportTable:
    exports: dict[str, tuple[int | None, bool, str, str]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        cols = line.split("\t")
        if len(cols) == 5 and cols[3] in ("EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL"):
            try:  # the common case, kept lean: this loop runs 25 000 times per kernel
                exports[cols[1]] = (
                    int(cols[0], 16),
                    cols[3] == "EXPORT_SYMBOL_GPL",
                    cols[4].strip(),
                    cols[2],
                )
                continue
            except ValueError:
                raise SymversError(f"line {lineno}: bad CRC {cols[0]!r}") from None
        if not line.strip():
            continue
        if len(cols) < 3:
            raise SymversError(f"line {lineno}: expected tab-separated CRC, symbol, module")
        try:
            crc = int(cols[0], 16)
        except ValueError:
            raise SymversError(f"line {lineno}: bad CRC {cols[0]!r}") from None
        name, owner = cols[1], cols[2]
        export_type, namespace = "EXPORT_SYMBOL", ""
        if len(cols) >= 4:
            if cols[3] in EXPORT_TYPES:
                export_type = cols[3]
                namespace = cols[4] if len(cols) >= 5 else ""
            elif len(cols) >= 5 and cols[4] in EXPORT_TYPES:  # 5.4..5.9: namespace third
                namespace, owner, export_type = cols[2], cols[3], cols[4]
        exports[name] = (crc, "GPL" in export_type, namespace.strip(), owner)
    return ExportTable(exports)
