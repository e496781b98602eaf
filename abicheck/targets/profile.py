"""Saved kernel profiles: everything abicheck needs about one kernel, in one file.

A profile is JSON (optionally gzip-compressed, chosen by magic bytes when read), so a CI
job can check modules against a fleet of kernels without their headers. Format version 1:
``{"abicheck_profile": 1, "release", "digest", "source", "config": {...},
"exports": {"name": [...], "crc": [...], "gpl_only": "0110...", "namespace": [...],
"owner": [index into "owners"], "owners": [...]}, ...}``. Exports are stored by column:
a profile is read on every run, and flat lists parse several times faster than 25 000
small ones.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
from dataclasses import replace
from typing import Any

from abicheck import __version__
from abicheck.errors import TargetError
from abicheck.model import ExportTable, GuardedMember, KernelTarget, Member, StructLayout
from abicheck.targets.layouts import BtfTypes

FORMAT = 1


def is_profile(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head == b"\x1f\x8b" or path.endswith(".json") or head[:1] == b"{"


def profile_dict(target: KernelTarget, with_btf: bool = True) -> dict[str, Any]:
    return {
        "abicheck_profile": FORMAT,
        "tool": f"abicheck {__version__}",
        "release": target.release,
        "digest": target.digest,
        "source": target.source,
        "kind": target.kind,
        "arch": target.arch,
        "version": list(target.version),
        "uts_version": target.uts_version,
        "distribution": target.distribution,
        "vermagic": target.vermagic,
        "vermagic_source": target.vermagic_source,
        "config": dict(sorted(target.config.items())),
        "exports": None if target.exports is None else _export_columns(target),
        "struct_module": None
        if target.struct_module is None
        else {
            "name": target.struct_module.name,
            "size": target.struct_module.size,
            "source": target.struct_module.source,
            "members": [
                [m.name, m.offset, m.size, m.type_name, m.bit_offset, m.bit_size]
                for m in target.struct_module.members
            ],
        },
        "module_h": [[g.name, g.condition] for g in target.module_h],
        # the kernel's BTF, so that struct layouts can be compared without the kernel image
        "btf": None
        if target.types is None or not with_btf
        else {
            "source": target.types.source,
            "data": base64.b64encode(gzip.compress(target.types.raw(), mtime=0)).decode(),
        },
        "notes": list(target.notes),
        "files": list(target.files),
    }


def _export_columns(target: KernelTarget) -> dict[str, Any]:
    assert target.exports is not None
    names = sorted(target.exports)
    exps = [target.exports[n] for n in names]
    owners = sorted({e.owner for e in exps})
    index = {o: i for i, o in enumerate(owners)}
    return {
        "name": names,
        "crc": [e.crc for e in exps],
        "gpl_only": "".join("1" if e.gpl_only else "0" for e in exps),
        "namespace": [e.namespace for e in exps],
        "owner": [index[e.owner] for e in exps],
        "owners": owners,
    }


def _export_table(cols: dict[str, Any]) -> ExportTable:
    owners = cols["owners"]
    gpl = [c == "1" for c in cols["gpl_only"]]
    owner = [owners[i] for i in cols["owner"]]
    return ExportTable(
        dict(
            zip(
                cols["name"],
                zip(cols["crc"], gpl, cols["namespace"], owner, strict=True),
                strict=True,
            )
        )
    )


_OPTION = re.compile(r"\bCONFIG_[A-Za-z0-9_]+")


def _btf_types(path: str, blob: dict[str, str] | None) -> BtfTypes | None:
    if not blob:
        return None

    def decode() -> bytes:
        try:
            return gzip.decompress(base64.b64decode(blob["data"]))
        except (ValueError, OSError, EOFError, KeyError) as e:
            raise TargetError(path, f"the profile's BTF is unreadable: {e}") from None

    return BtfTypes(f"{path} (saved from {blob.get('source', '?')})", decode=decode)


def save_profile(target: KernelTarget, path: str, with_btf: bool = True) -> None:
    data = json.dumps(
        profile_dict(target, with_btf), separators=(",", ":"), sort_keys=False
    ).encode()
    if path.endswith(".gz"):
        # mtime=0 keeps the file byte-identical across saves of the same kernel
        data = gzip.compress(data, compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


def target_from_profile(path: str) -> KernelTarget:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        d = json.loads(raw)
    except (OSError, EOFError, gzip.BadGzipFile, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TargetError(path, f"not a readable abicheck profile: {e}") from None
    if not isinstance(d, dict) or d.get("abicheck_profile") != FORMAT:
        raise TargetError(path, f"not an abicheck profile of format {FORMAT}")
    try:
        exports = None if d["exports"] is None else _export_table(d["exports"])
        sm = d.get("struct_module")
        layout = (
            None
            if sm is None
            else StructLayout(
                sm["name"],
                sm["size"],
                tuple(Member(*m[:4], *m[4:6]) for m in sm["members"]),
                sm["source"],
            )
        )
        target = KernelTarget(
            id=f"{d['release']}@{d['digest'][:8]}",
            release=d["release"],
            source=os.path.abspath(path),
            kind="profile",
            digest=d["digest"],
            arch=d["arch"],
            version=tuple(d["version"]),
            uts_version=d.get("uts_version"),
            distribution=d.get("distribution"),
            config=d["config"],
            vermagic=d.get("vermagic"),
            vermagic_source=d.get("vermagic_source", ""),
            exports=exports,
            struct_module=layout,
            module_h=tuple(
                GuardedMember(n, c, tuple(sorted(set(_OPTION.findall(c)))))
                for n, c in d.get("module_h", ())
            ),
            types=_btf_types(path, d.get("btf")),
            notes=tuple(d.get("notes", ())),
            files=tuple(d.get("files", ())),
        )
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise TargetError(path, f"malformed abicheck profile: {e}") from None
    return replace(target, notes=(*target.notes, f"profile of {d['source']}"))
