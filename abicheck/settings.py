"""Project configuration and rule selection, as ruff does it.

Read from ``[tool.abicheck]`` in ``pyproject.toml`` or from ``abicheck.toml`` (top level),
found in the current directory or its parents; command-line options beat the file.

    [tool.abicheck]
    kernels = ["/usr/src/linux-headers-6.1.0-47-amd64", "fleet/"]
    select = ["ALL"]
    ignore = ["TN001", "signature"]          # IDs, prefixes, kebab names or categories
    fail-on = "error"                        # error | warning | info
    format = "text"
    baseline = "abicheck-baseline.json"
    [tool.abicheck.per-module-ignores]
    "legacy/*.ko" = ["MV002"]

A selector matches a rule by ID (``MV001``), ID prefix (``MV``, ``M``), kebab name
(``modversion-crc-mismatch``), category (``modversions``) or ``ALL``. For each rule the
most specific matching selector decides (an exact ID or name beats a longer prefix, a
longer prefix a shorter one, any prefix a category, a category ``ALL``); on a tie
``ignore`` wins.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from abicheck import ruledata
from abicheck.errors import AbicheckError
from abicheck.model import Severity

FAIL_ON = ("error", "warning", "info")
KNOWN_KEYS = {
    "kernels",
    "require-layout",
    "select",
    "ignore",
    "extend-select",
    "extend-ignore",
    "fail-on",
    "format",
    "per-module-ignores",
    "baseline",
    "exit-zero",
    "assume-loader",
}


class SettingsError(AbicheckError):
    pass


@dataclass
class Settings:
    path: str | None = None  # the file read, if any
    root: str = "."  # the project root: the file's directory, or the current one
    kernels: list[str] = field(default_factory=list)
    select: list[str] = field(default_factory=lambda: ["ALL"])
    ignore: list[str] = field(default_factory=list)
    fail_on: str = "error"
    format: str | None = None
    baseline: str | None = None
    exit_zero: bool = False
    assume_loader: str | None = None
    require_layout: bool = False
    per_module_ignores: dict[str, list[str]] = field(default_factory=dict)


def find_config(start: str = ".") -> str | None:
    here = os.path.abspath(start)
    while True:
        for name in ("abicheck.toml", "pyproject.toml"):
            path = os.path.join(here, name)
            if os.path.isfile(path) and (name == "abicheck.toml" or _has_tool_table(path)):
                return path
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _has_tool_table(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        return "abicheck" in tomllib.loads(raw.decode()).get("tool", {})
    except tomllib.TOMLDecodeError:
        # broken TOML that is meant for us is an error to report, not a file to skip
        return b"tool.abicheck" in raw
    except (OSError, UnicodeDecodeError):
        return False


def load_settings(path: str | None) -> Settings:
    if path is None:
        return Settings(root=os.getcwd())
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise SettingsError(path, f"cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(path, f"invalid TOML: {e}") from None
    # only pyproject.toml nests the settings; any other file given to --config is read
    # like abicheck.toml (its top-level keys were once skipped unread, typos and all)
    table: dict[str, Any] = (
        doc.get("tool", {}).get("abicheck", {})
        if os.path.basename(path) == "pyproject.toml"
        else doc
    )
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        # a misspelt key silently ignored is a setting silently lost: refused in both files
        near = difflib.get_close_matches(unknown[0], sorted(KNOWN_KEYS), n=1)
        hint = f"did you mean {near[0]!r}?" if near else "known: " + ", ".join(sorted(KNOWN_KEYS))
        raise SettingsError(path, f"unknown setting {unknown[0]!r} ({hint})")
    root = os.path.dirname(os.path.abspath(path))
    s = Settings(path=path, root=root)
    s.kernels = [_under(root, k) for k in _strings(path, table, "kernels")]
    if "select" in table:
        s.select = _strings(path, table, "select")
    s.ignore = _strings(path, table, "ignore")
    s.select += _strings(path, table, "extend-select")
    s.ignore += _strings(path, table, "extend-ignore")
    s.fail_on = table.get("fail-on", "error")
    if s.fail_on not in FAIL_ON:
        raise SettingsError(path, f"fail-on must be one of {', '.join(FAIL_ON)}")
    s.format = table.get("format")
    s.baseline = _baseline(path, root, table["baseline"]) if "baseline" in table else None
    s.exit_zero = bool(table.get("exit-zero", False))
    s.assume_loader = table.get("assume-loader")
    s.require_layout = table.get("require-layout", False)
    if not isinstance(s.require_layout, bool):
        raise SettingsError(path, "require-layout must be true or false")
    pmi = table.get("per-module-ignores", {})
    if not isinstance(pmi, dict):
        raise SettingsError(path, "per-module-ignores must be a table of glob = [rules]")
    s.per_module_ignores = {k: list(v) for k, v in pmi.items()}
    for selector in s.select + s.ignore + [r for v in pmi.values() for r in v]:
        check_selector(selector, path)
    return s


def _strings(path: str, table: dict[str, Any], key: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(path, f"{key} must be a list of strings")
    return value


def _baseline(path: str, root: str, value: object) -> str:
    """The project's baseline file, which must lie inside the project: abicheck writes it
    when it does not exist, and a checked-in project file must not make a run create or
    overwrite files elsewhere ("../../x", an absolute path, a symlink leading out).
    ``--baseline`` on the command line is the user's own choice and is not limited."""
    if not isinstance(value, str) or not value or "\0" in value:
        raise SettingsError(path, "baseline must be a file name inside the project")
    full = os.path.join(root, value)
    real_root = os.path.realpath(root)
    if os.path.commonpath([os.path.realpath(full), real_root]) != real_root:
        raise SettingsError(
            path, f"baseline {value!r} points outside the project ({root}); refusing to write there"
        )
    return full


def _under(root: str, p: str) -> str:
    return p if os.path.isabs(p) or p == "running" else os.path.join(root, p)


# -- selection ---------------------------------------------------------------------------


def check_selector(selector: str, where: str | None = None) -> None:
    if _specificity(selector, None) is None:
        raise SettingsError(
            where,
            f"unknown rule selector {selector!r} (an ID like MV001, a "
            "prefix like MV, a name like modversion-crc-mismatch, a "
            "category like modversions, or ALL)",
        )


def _specificity(selector: str, rule: ruledata.Rule | None) -> int | None:
    """How specifically ``selector`` names ``rule`` (None: it does not). With rule None:
    whether the selector names any rule at all."""
    rules = [rule] if rule is not None else list(ruledata.all_rules().values())
    sel = selector.strip()
    for r in rules:
        if sel == "ALL":
            return 0
        if sel.upper() == r.id or sel == r.name:
            return 100
        if sel.isalnum() and sel.upper() == sel and r.id.startswith(sel):
            return 10 + len(sel)
        if sel == r.category:
            return 5
    return None


def rule_filter(select: Sequence[str], ignore: Sequence[str]) -> Callable[[str], bool]:
    """A predicate rule_id → bool."""
    cache: dict[str, bool] = {}

    def selected(rule_id: str) -> bool:
        if rule_id not in cache:
            rule = ruledata.rule(rule_id)
            best_on = max(
                (s for s in (_specificity(x, rule) for x in select) if s is not None), default=None
            )
            best_off = max(
                (s for s in (_specificity(x, rule) for x in ignore) if s is not None), default=None
            )
            cache[rule_id] = best_on is not None and (best_off is None or best_on > best_off)
        return cache[rule_id]

    return selected


def module_ignores(settings: Settings, module_path: str) -> list[str]:
    rel = os.path.relpath(os.path.abspath(module_path), settings.root)
    out: list[str] = []
    for pattern, rules in settings.per_module_ignores.items():
        if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(os.path.basename(module_path), pattern):
            out += rules
    return out


def fails(severity: Severity, fail_on: str) -> bool:
    return severity.rank <= FAIL_ON.index(fail_on)
