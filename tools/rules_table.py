#!/usr/bin/env python3
"""The README's "What is checked" table, printed from rules/*.toml.

    python tools/rules_table.py

One row per rule family (the ID's two letters), families in the order the kernel's loader
meets their earliest rule (the ``stage`` order of rules/loader.toml's oldest generation),
rules in ID order, each with its ``title``. Paste the output between the README's
markers; tests/test_rules.py fails while the two differ.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from abicheck import ruledata


def families() -> list[tuple[str, list[ruledata.Rule]]]:
    by_family: dict[str, list[ruledata.Rule]] = {}
    for rule in ruledata.all_rules().values():  # sorted by ID
        by_family.setdefault(rule.id[:2], []).append(rule)
    rank = ruledata.stage_order(next(iter(ruledata.loader_data()["generations"])))
    return sorted(
        by_family.items(),
        key=lambda item: (min(rank[r.stage] for r in item[1]), item[0]),
    )


def table() -> str:
    lines = ["| family | rules |", "| --- | --- |"]
    for prefix, rules in families():
        cell = "; ".join(f"{r.id} {r.title}" for r in rules)
        lines.append(f"| {prefix} ({rules[0].category}) | {cell} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
