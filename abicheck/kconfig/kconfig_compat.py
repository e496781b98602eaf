"""Compatibility shim: teach kconfiglib 14.1.0 the Kconfig syntax that came after it.

A mixin over ``kconfiglib.Kconfig`` (the installed package, extended at run time, never
copied). Each rewrite names the kernel change that introduced the syntax; the rest of
the language is what kconfiglib already parses. Proven on Debian's 6.1 and 6.12 trees by
tests/test_config_kconfiglib.py (every symbol loads, a distribution .config round-trips).
"""

from __future__ import annotations

import re

import kconfiglib

# `modules` as a first-level attribute of `config MODULES`: commit 6dd85ff178cd
# ("kconfig: change "modules" from sub-option to first-level attribute") (in v5.13).
# kconfiglib knows only the older `option modules`, which means the same thing.
_MODULES = re.compile(r"^(\s*)modules\s*(#.*)?$")
# `transitional`: commit f9afce4f32e9 ("kconfig: Add transitional symbol attribute for
# migration support") (in v6.18), first used by CFI_CLANG. Such a symbol takes its value
# from an old .config but is never written back; kconfiglib honours a user value only on
# a symbol with a prompt, so it gets an invisible one, and the written config leaves it out.
_TRANSITIONAL = re.compile(r"^(\s*)transitional\s*(#.*)?$")
TRANSITIONAL_PROMPT = "(transitional)"


class CompatMixin:
    """Rewrites the lines kconfiglib 14.1.0 cannot tokenize into ones it can."""

    transitional: set[str]

    def _tokenize(self, s: str) -> list[object]:
        m = _MODULES.match(s)
        if m:
            s = f"{m.group(1)}option modules\n"
        elif t := _TRANSITIONAL.match(s):
            node_name = getattr(self, "_abicheck_current", None)
            if node_name:
                self.transitional.add(node_name)
            s = f'{t.group(1)}prompt "{TRANSITIONAL_PROMPT}"\n'
        tokens = super()._tokenize(s)  # type: ignore[misc]
        if tokens and tokens[0] in (_T_CONFIG, _T_MENUCONFIG) and len(tokens) > 1:
            sym = tokens[1]
            self._abicheck_current = getattr(sym, "name", None)
        return tokens


_T_CONFIG = kconfiglib._T_CONFIG
_T_MENUCONFIG = kconfiglib._T_MENUCONFIG


# -- semantics ----------------------------------------------------------------------------
#
# Where kconfiglib 14.1.0 decides differently from the C tools of the trees abicheck
# supports (scripts/kconfig/symbol.c, sym_calc_value(), identical in 6.1 and 6.12):
#
# An `imply`-ed bool/tristate is written out ("# CONFIG_X is not set") whenever its
# implier is on, even if its own `depends on` is not met: C sets SYMBOL_WRITE on
# `sym->implied.tri != no` alone; kconfiglib also requires the direct dependency. Seen on
# Debian 6.12: HARDLOCKUP_DETECTOR_BUDDY, HARDLOCKUP_DETECTOR_ARCH, NVMEM_LAYOUTS.
#
# Patched on kconfiglib.Symbol's tri_value property, effective only for symbols of a
# Kconfig built with CompatMixin, so other kconfiglib users in the process see no change.

_ORIGINAL_TRI_VALUE = kconfiglib.Symbol.tri_value


def _tri_value(self: kconfiglib.Symbol) -> int:
    fresh = self._cached_tri_val is None
    val = _ORIGINAL_TRI_VALUE.fget(self)
    if (
        fresh
        and not self._write_to_conf
        and isinstance(self.kconfig, CompatMixin)
        and not self.choice
        and self.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE)
        and not (self.visibility and self.user_value is not None)
        and kconfiglib.expr_value(self.weak_rev_dep)
    ):
        self._write_to_conf = True
    return val


kconfiglib.Symbol.tri_value = property(_tri_value, doc=_ORIGINAL_TRI_VALUE.__doc__)
