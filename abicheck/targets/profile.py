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
from typing import TYPE_CHECKING, Any

from abicheck import __version__
from abicheck.errors import TargetError
from abicheck.model import ExportTable, GuardedMember, KernelTarget, Member, StructLayout
from abicheck.targets.layouts import BtfTypes

if TYPE_CHECKING:
    from abicheck.targets.probe import LayoutTable

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
        if not isinstance(target.types, BtfTypes) or not with_btf
        else {
            "source": target.types.source,
            # raw() is BtfTypes's: a target saved as a profile has its layouts from BTF
            "data": base64.b64encode(gzip.compress(target.types.raw(), mtime=0)).decode(),
        },
        # without BTF (headers alone): the structs the probe compiled from the headers
        "structs": _probe_structs(target) if with_btf else None,
        "layout_source": target.layout_source or None,
        "layout_gap": target.layout_gap,
        "notes": list(target.notes),
        "files": list(target.files),
    }


def _probe_structs(target: KernelTarget) -> dict[str, Any] | None:
    from abicheck.targets.probe import ProbeTypes, layout_json

    if not isinstance(target.types, ProbeTypes):
        return None
    return {k: layout_json(v) for k, v in sorted(target.types.known().items())}


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
        # Decoded on first use (a module with debug info): a profile read for a module
        # without it never pays for it. The caller reports the failure as this target's.
        from abicheck.readers.compressed import DecodeErrors, TooBig, inflate

        try:
            return inflate("gzip", base64.b64decode(blob["data"], validate=True), PROFILE_LIMIT)
        except TooBig:
            problem = f"profile field 'btf.data' expands beyond {PROFILE_LIMIT >> 20} MiB"
        except DecodeErrors as e:
            problem = f"profile field 'btf.data' must be gzip-compressed BTF in base64: {e}"
        raise TargetError(path, problem)

    return BtfTypes(
        f"{path} (saved from {blob.get('source', '?')})",
        decode=decode,
        problem="profile field 'btf.data' is not valid BTF",
    )


def save_profile(target: KernelTarget, path: str, with_btf: bool = True) -> None:
    data = json.dumps(
        profile_dict(target, with_btf), separators=(",", ":"), sort_keys=False
    ).encode()
    if path.endswith(".gz"):
        # mtime=0 keeps the file byte-identical across saves of the same kernel
        data = gzip.compress(data, compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


# A profile is a few MiB (the 6.1 samples: 4 MiB of JSON, most of it the BTF); past this
# it is a bomb or not a profile.
PROFILE_LIMIT = 64 << 20
# Only the two kernel-version numbers and BTF offsets need more than 32 bits; a longer
# integer is hostile (Python's json refuses more than 4300 digits, slowly).
_MAX_INT = 1 << 64


class _Bad(Exception):
    """A field that does not have the profile format's type: its name and what it must be."""


def _is_int(v: object, low: int = 0) -> bool:
    return type(v) is int and low <= v < _MAX_INT


def _ints(v: object, n: int, below: int = _MAX_INT, none: bool = False) -> bool:
    """``v`` is a list of ``n`` integers in [0, below) (or None when ``none``).

    By type sets and min/max, which run in C: a per-item Python test over 25 000
    exports costs more than reading the profile.
    """
    if not isinstance(v, list) or len(v) != n:
        return False
    types = set(map(type, v))
    if none and type(None) in types:
        types.discard(type(None))
        v = [x for x in v if x is not None]
    if not types <= {int}:
        return False
    return not v or (min(v) >= 0 and max(v) < below)


def _need(ok: bool, field: str, must: str) -> None:
    if not ok:
        raise _Bad(f"profile field {field!r} must be {must}")


def _str(d: dict[str, Any], key: str, optional: bool = False) -> None:
    v = d.get(key) if optional else d.get(key, _MISSING)
    if v is _MISSING:
        raise _Bad(f"profile field {key!r} is missing")
    _need(isinstance(v, str) or (optional and v is None), key, "a string")


_MISSING = object()


def _strings(v: object, field: str, none: bool = False) -> None:
    allowed = {str, type(None)} if none else {str}
    _need(isinstance(v, list) and set(map(type, v)) <= allowed, field, "a list of strings")


def _saved_structs(path: str, structs: dict[str, Any] | None) -> LayoutTable | None:
    from abicheck.targets.probe import LayoutTable, layout_from_json

    if not structs:
        return None
    try:
        table = {k: layout_from_json(k, v, f"profile:{path}") for k, v in structs.items()}
    except ValueError as e:
        raise TargetError(path, f"profile field 'structs': {e}") from None
    return LayoutTable(table, f"profile:{path}")


def validate(d: object) -> None:
    """Raise :class:`_Bad` naming the first field that does not fit format 1.

    Hand-written rather than a JSON schema: it runs on every check of one module, and
    looping over 25 000 exports in C-level ``all()`` costs a millisecond where a schema
    validator costs hundreds.
    """
    _need(isinstance(d, dict), "(top level)", "a JSON object")
    assert isinstance(d, dict)
    for key in ("layout_source", "layout_gap"):
        _need(d.get(key) is None or isinstance(d.get(key), str), key, "a string or null")
    _need(d.get("structs") is None or isinstance(d.get("structs"), dict), "structs", "an object")
    for key in ("release", "digest", "source", "arch"):
        _str(d, key)
    _need(bool(d["release"]), "release", "a non-empty string")
    for key in ("uts_version", "distribution", "vermagic", "vermagic_source", "tool", "kind"):
        _str(d, key, optional=True)
    v = d.get("version", _MISSING)
    _need(
        isinstance(v, list) and 2 <= len(v) <= 3 and all(_is_int(x) for x in v),
        "version",
        "a list of 2 or 3 non-negative integers",
    )
    config = d.get("config", _MISSING)
    _need(
        isinstance(config, dict) and set(map(type, config.values())) <= {str},
        "config",
        "an object of option names to strings",
    )
    # a kernel's .config has thousands of options; an empty one is a damaged profile,
    # not a kernel without CONFIG_MODULES
    _need(bool(config), "config", "a non-empty object (the kernel's .config)")
    exports = d.get("exports", _MISSING)
    if exports is not None:
        _need(isinstance(exports, dict), "exports", "an object of columns, or null")
        _export_fields(exports)
    sm = d.get("struct_module")
    if sm is not None:
        _need(isinstance(sm, dict), "struct_module", "an object, or null")
        _need(isinstance(sm.get("name"), str), "struct_module.name", "a string")
        _need(isinstance(sm.get("source"), str), "struct_module.source", "a string")
        _need(_is_int(sm.get("size")), "struct_module.size", "a non-negative integer")
        members = sm.get("members")
        _need(
            isinstance(members, list) and all(_is_member(m) for m in members),
            "struct_module.members",
            "a list of [name, offset, size, type, bit_offset, bit_size]",
        )
    module_h = d.get("module_h", [])
    _need(
        isinstance(module_h, list)
        and all(
            isinstance(g, list) and len(g) == 2 and all(isinstance(x, str) for x in g)
            for g in module_h
        ),
        "module_h",
        "a list of [member, condition] strings",
    )
    btf = d.get("btf")
    if btf is not None:
        _need(isinstance(btf, dict), "btf", "an object, or null")
        _need(isinstance(btf.get("data"), str), "btf.data", "a base64 string")
        _need(isinstance(btf.get("source", ""), str), "btf.source", "a string")
    _strings(d.get("notes", []), "notes")
    _strings(d.get("files", []), "files")


def _is_member(m: object) -> bool:
    return (
        isinstance(m, list)
        and 4 <= len(m) <= 6
        and isinstance(m[0], str)
        and _is_int(m[1])
        and (m[2] is None or _is_int(m[2]))
        and isinstance(m[3], str)
        and all(x is None or _is_int(x) for x in m[4:])
    )


def _export_fields(cols: dict[str, Any]) -> None:
    names, owners = cols.get("name"), cols.get("owners")
    _strings(names, "exports.name")
    assert isinstance(names, list)
    n = len(names)
    crc = cols.get("crc")
    _need(
        _ints(crc, n, 1 << 32, none=True),
        "exports.crc",
        f"a list of {n} 32-bit CRCs (integers or null)",
    )
    gpl = cols.get("gpl_only")
    _need(
        isinstance(gpl, str) and len(gpl) == n and not gpl.strip("01"),
        "exports.gpl_only",
        f"a string of {n} '0' or '1'",
    )
    namespace = cols.get("namespace")
    _strings(namespace, "exports.namespace", none=True)
    _need(len(namespace) == n, "exports.namespace", f"a list of {n} strings")  # type: ignore[arg-type]
    _strings(owners, "exports.owners")
    owner = cols.get("owner")
    m = len(owners)  # type: ignore[arg-type]
    _need(
        _ints(owner, n, m),
        "exports.owner",
        f"a list of {n} indexes into exports.owners",
    )


def read_profile_json(path: str, limit: int = PROFILE_LIMIT) -> Any:
    """The JSON document of a profile file, plain or gzip, decompressed to at most
    ``limit`` bytes; TargetError for anything json cannot parse."""
    from abicheck.readers.compressed import DecodeErrors, TooBig, inflate

    problem = None
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise TargetError(path, f"larger than {limit >> 20} MiB: not an abicheck profile")
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = inflate("gzip", raw, limit)
        return json.loads(raw)
    except TooBig:
        problem = f"decompresses beyond {limit >> 20} MiB: not an abicheck profile (a bomb?)"
    except RecursionError:
        problem = "not a readable abicheck profile: JSON nested too deeply"
    except (OSError, UnicodeDecodeError, *DecodeErrors) as e:
        # json.JSONDecodeError and Python's limit on integer digits are ValueErrors
        why = "an integer too long" if "integer string conversion" in str(e) else e
        problem = f"not a readable abicheck profile: {why}"
    raise TargetError(path, problem)


def target_from_profile(path: str) -> KernelTarget:
    d = read_profile_json(path)
    if not isinstance(d, dict) or d.get("abicheck_profile") != FORMAT:
        raise TargetError(path, f"not an abicheck profile of format {FORMAT}")
    try:
        validate(d)
    except _Bad as e:
        raise TargetError(path, str(e)) from None
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
        vermagic_source=d.get("vermagic_source") or "",
        exports=exports,
        struct_module=layout,
        module_h=tuple(
            GuardedMember(n, c, tuple(sorted(set(_OPTION.findall(c)))))
            for n, c in d.get("module_h", ())
        ),
        types=_btf_types(path, d.get("btf")) or _saved_structs(path, d.get("structs")),
        layout_source=f"{d.get('layout_source') or sm['source']}, saved in {path}"
        if layout is not None and sm is not None
        else "",
        layout_gap=None
        if layout is not None
        else "the profile was saved without layouts"
        + (f" ({d['layout_gap']})" if d.get("layout_gap") else ""),
        notes=(*d.get("notes", ()), f"profile of {d['source']}"),
        files=tuple(d.get("files", ())),
    )
    return target
