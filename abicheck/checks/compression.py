"""Compressed modules: who decompresses them, if anyone, before load_module()."""

from __future__ import annotations

from collections.abc import Iterator

from abicheck import ruledata
from abicheck.checks import check
from abicheck.context import CheckContext
from abicheck.model import Finding

# CONFIG_MODULE_COMPRESS_<X> → the compression kernel/module/decompress.c is built for
_KERNEL_ALGO = {"GZIP": "gzip", "XZ": "xz", "ZSTD": "zstd"}


def _kernel_decompresses(ctx: CheckContext) -> str | None:
    if not ctx.target.enabled("MODULE_DECOMPRESS"):
        return None
    for option, algo in _KERNEL_ALGO.items():
        if ctx.target.enabled("MODULE_COMPRESS_" + option):
            return algo
    return None


@check("CP001")
def compression_unsupported(ctx: CheckContext) -> Iterator[Finding]:
    compression = ctx.module.compression
    if compression is None:
        return
    loader = ctx.run.assumptions.loader
    supported = list(ruledata.loader_data()["loaders"][loader]["decompresses"])
    if loader == "finit":
        algo = _kernel_decompresses(ctx)
        if algo == compression:
            return
        if algo is None:
            yield ctx.finding(
                evidence={
                    "compression": compression,
                    "supported": "none",
                    "why": "finit_module(MODULE_INIT_COMPRESSED_FILE) needs "
                    f"CONFIG_MODULE_DECOMPRESS, which {ctx.target.release} lacks",
                },
                kernel_says="",
                errno="EOPNOTSUPP",
            )
        else:
            yield ctx.finding(
                evidence={
                    "compression": compression,
                    "supported": algo,
                    "why": f"the kernel decompresses only {algo} (CONFIG_MODULE_COMPRESS_"
                    f"{algo.upper() if algo != 'gzip' else 'GZIP'})",
                },
                errno="EINVAL",
                kernel_says=f"not a{'n' if algo == 'xz' else ''} {algo} compressed module",
            )
        return
    if compression in supported:
        return
    yield ctx.finding(
        evidence={
            "compression": compression,
            "supported": ", ".join(supported) or "none",
            "why": f"{loader} does not decompress {compression} ("
            f"{ruledata.loader_data()['loaders'][loader]['description']}) and hands the "
            "compressed bytes to the kernel",
        }
    )
