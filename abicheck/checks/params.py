"""parse_args() on the parameters given with --param, against the module's parmtype=."""

from __future__ import annotations

import re
from collections.abc import Iterator

from abicheck.checks import check
from abicheck.context import CheckContext
from abicheck.model import Effect, Finding

# kstrto*() limits per parmtype (kernel/params.c STANDARD_PARAM_DEF)
_INT_RANGES = {
    "byte": (0, 2**8 - 1),
    "short": (-(2**15), 2**15 - 1),
    "ushort": (0, 2**16 - 1),
    "int": (-(2**31), 2**31 - 1),
    "uint": (0, 2**32 - 1),
    "hexint": (0, 2**32 - 1),
    "long": (-(2**63), 2**63 - 1),
    "ulong": (0, 2**64 - 1),
    "ullong": (0, 2**64 - 1),
}
_HINTS = {
    "bool": "y/n, Y/N, 1/0, on/off",
    "invbool": "y/n, Y/N, 1/0, on/off",
    "charp": "any string up to 1024 bytes",
}


def kstrto(value: str, signed: bool) -> int | None:
    """lib/kstrtox.c: base 0 (0x hex, 0 octal), one optional sign, one trailing newline."""
    s = value[:-1] if value.endswith("\n") else value
    neg = False
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("-") and signed:
        neg, s = True, s[1:]
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", s):
        n = int(s[2:], 16)
    elif re.fullmatch(r"0[0-7]*", s):
        n = int(s, 8)
    elif re.fullmatch(r"[1-9][0-9]*", s):
        n = int(s)
    else:
        return None
    return -n if neg else n


def kstrtobool(value: str | None) -> bool | None:
    if not value:
        return None
    c = value[0]
    if c in "yY1":
        return True
    if c in "nN0":
        return False
    if c in "oO" and len(value) > 1:
        return {"n": True, "N": True, "f": False, "F": False}.get(value[1])
    return None


def problem_with(ptype: str, value: str | None) -> tuple[str, str] | None:
    """(problem, errno) if the kernel's setter for ``ptype`` rejects ``value``."""
    if ptype in ("bool", "invbool"):
        if value is None:  # KERNEL_PARAM_OPS_FL_NOARG: a bare name means "1"
            return None
        return None if kstrtobool(value) is not None else ("not a boolean", "EINVAL")
    if value is None:
        return "no value given", "EINVAL"
    if ptype == "charp":
        return ("longer than 1024 bytes", "ENOSPC") if len(value) > 1024 else None
    if ptype in _INT_RANGES:
        lo, hi = _INT_RANGES[ptype]
        n = kstrto(value, lo < 0)
        if n is None:
            return "not a number kstrto*() accepts", "EINVAL"
        if not lo <= n <= hi:
            return f"out of range {lo}..{hi}", "ERANGE"
        return None
    if ptype.startswith("array of "):
        for item in value.split(","):
            p = problem_with(ptype[len("array of ") :], item)
            if p:
                return f"element {item!r}: {p[0]}", p[1]
    return None


@check("PA001")
def unknown_parameter(ctx: CheckContext) -> Iterator[Finding]:
    declared = _declared(ctx)
    for i, (name, _value) in enumerate(ctx.run.assumptions.params_for(ctx.module.name)):
        if name not in declared and name not in ("async_probe", "dyndbg"):
            yield ctx.finding(
                evidence={"param": name, "declared": ", ".join(sorted(declared)) or "none"},
                order=(i,),
            )


@check("PA002")
def invalid_parameter_value(ctx: CheckContext) -> Iterator[Finding]:
    declared = _declared(ctx)
    for i, (name, value) in enumerate(ctx.run.assumptions.params_for(ctx.module.name)):
        ptype = declared.get(name)
        if not ptype:
            continue
        found = problem_with(ptype, value)
        if found:
            problem, errno = found
            says = (
                f"{ctx.module.name}: `{value or ''}' too large for parameter `{name}'"
                if errno == "ENOSPC"
                else None
            )
            yield ctx.finding(
                evidence={
                    "param": name,
                    "value": value or "",
                    "type": ptype,
                    "problem": problem,
                    "hint": _HINTS.get(
                        ptype, f"an integer in {ptype}'s range (decimal, 0x hex, 0 octal)"
                    ),
                },
                order=(i,),
                errno=errno,
                kernel_says=says,
            )


@check("PA003")
def parameter_unchecked(ctx: CheckContext) -> Iterator[Finding]:
    declared = _declared(ctx)
    for i, (name, _value) in enumerate(ctx.run.assumptions.params_for(ctx.module.name)):
        if name in declared and not declared[name]:
            yield ctx.finding(evidence={"param": name}, order=(i,), effect=Effect.NONE)


def _declared(ctx: CheckContext) -> dict[str, str]:
    """Parameter name → type, from __param's kernel_param_ops (param_ops_int → "int");
    "" for a module_param_cb() parameter with its own ops. parmtype= in .modinfo gives the
    element type of arrays."""
    parmtypes = dict(e.partition(":")[::2] for e in ctx.module.info_all("parmtype"))
    out: dict[str, str] = {}
    for name, ops in ctx.module.params:
        if ops == "param_array_ops":
            out[name] = parmtypes.get(name, "")
        elif ops.startswith("param_ops_"):
            kind = ops[len("param_ops_") :]
            out[name] = {"bool_enable_only": "bool"}.get(kind, kind)
        else:
            out[name] = ""
    return out
