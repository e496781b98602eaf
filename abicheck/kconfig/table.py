"""The config-impact table: rules/config/*.toml, read once.

categories.toml orders the impact categories and carries their why and fix; each
category names a table file of options with the place (file and struct, or file:line)
where the option acts. tools/config_table.py generates the tables from real trees.
"""

from __future__ import annotations

import os
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from typing import Any

from abicheck.kconfig.model import Impact
from abicheck.ruledata import rules_dir


@dataclass(frozen=True)
class Category:
    impact: Impact
    title: str
    severity: str  # error, warning, info
    why: str
    fix: str


@dataclass(frozen=True)
class Entry:
    """One row of a table: where an option acts, and how."""

    option: str  # CONFIG_FOO, or a prefix when ``prefix`` is set
    where: str
    detail: str
    series: tuple[str, ...]
    data: dict[str, Any]
    prefix: bool = False


def config_dir() -> str:
    return os.path.join(rules_dir(), "config")


@cache
def categories() -> dict[Impact, Category]:
    with open(os.path.join(config_dir(), "categories.toml"), "rb") as f:
        data = tomllib.load(f)
    out = {}
    for c in data["category"]:
        impact = Impact(c["id"])
        out[impact] = Category(impact, c["title"], c["severity"], c["why"], c["fix"])
    return out


@cache
def _table(name: str) -> dict[str, list[Entry]]:
    with open(os.path.join(config_dir(), name), "rb") as f:
        rows = tomllib.load(f).get("option", [])
    out: dict[str, list[Entry]] = defaultdict(list)
    for row in rows:
        prefix = "prefix" in row
        key = row["prefix"] if prefix else row["option"]
        detail = row.get("detail") or row.get("effect") or ""
        if "word" in row:
            detail = f"vermagic word '{row['word']}'"
        elif "members" in row:
            detail = "members " + ", ".join(row["members"])
        elif not detail:
            detail = "compiler, assembler or linker flags"
        out[key].append(Entry(key, row["where"], detail, tuple(row.get("series", ())), row, prefix))
    return dict(out)


TABLES = {
    Impact.VERMAGIC: "vermagic.toml",
    Impact.STRUCT_MODULE: "struct_module.toml",
    Impact.LOADER: "modversions.toml",
    Impact.STRUCT_LAYOUT: "structs.toml",
    Impact.CODEGEN: "codegen.toml",
    Impact.TOOLCHAIN: "toolchain.toml",
}


def entries(impact: Impact, option: str) -> list[Entry]:
    """The rows of one category's table for an option (prefix rows included)."""
    table = _table(TABLES[impact])
    found = list(table.get(option, ()))
    if not found:
        for key, rows in table.items():
            if rows[0].prefix and option.startswith(key):
                found.extend(rows)
                break
    return found


def size() -> dict[str, int]:
    """Rows per table, for the report and the docs."""
    return {
        impact.value: sum(len(v) for v in _table(name).values()) for impact, name in TABLES.items()
    }


def tool_of(option: str) -> str | None:
    """The toolchain program a toolchain option comes from (pahole, gcc, ld ...)."""
    rows = entries(Impact.TOOLCHAIN, option)
    return rows[0].data.get("tool") if rows else None
