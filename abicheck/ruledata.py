"""The rule table and loader data, read from the TOML files in ``rules/``.

``rules/`` at the top of the repository is the single source of truth: one file per
rule (``MV001.toml``), plus ``loader.toml`` (how each kernel generation orders its
checks and what distributions patch) and ``arch/*.toml``. The wheel carries the same
directory as ``abicheck/rules``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from abicheck.model import Effect, Severity

# A rule states its effect on the load; how loudly abicheck reports it follows from that.
SEVERITY_OF_EFFECT = {
    Effect.REFUSE: Severity.ERROR,
    Effect.UNSAFE: Severity.ERROR,
    Effect.TAINT: Severity.WARNING,
    Effect.WARN: Severity.WARNING,
    Effect.NONE: Severity.INFO,
}

# The closed vocabulary of `category`: the JSON schema enumerates it and --select takes it.
CATEGORIES = (
    "input",
    "elf",
    "signature",
    "vermagic",
    "modversions",
    "symbol",
    "dependency",
    "gpl",
    "namespace",
    "relocation",
    "layout",
    "config",
    "license",
    "compression",
    "taint",
    # what the live kernel did under `abicheck prove` (context.Proved), not read from files
    "prove",
)
PROVE = "prove"
_ID = re.compile(r"^[A-Z]{2}\d{3}$")
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    category: str
    severity: Severity
    effect: Effect
    stage: str
    summary: str
    message: str
    fix: str
    kernel_says: dict[str, str]  # by loader generation, "default" as fallback
    taint: str | None
    errno: str | None = None
    title: str = ""  # a few words for the README's table (tools/rules_table.py)
    # evidence keys that tell two findings of this rule apart (SARIF fingerprints, baseline)
    identity: tuple[str, ...] = ()
    # a finding of this rule makes every other finding moot (the load fails before them)
    exclusive: bool = False
    data: dict[str, Any] = field(default_factory=dict)  # rule-specific tables
    docs: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    def kernel_message(self, generation: str) -> str | None:
        text = self.kernel_says.get(generation, self.kernel_says.get("default"))
        return text or None


@cache
def rules_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "rules"), os.path.join(os.path.dirname(here), "rules")):
        if os.path.isfile(os.path.join(candidate, "loader.toml")):
            return candidate
    raise FileNotFoundError("abicheck's rules/ directory is missing from this installation")


class RuleDataError(ValueError):
    pass


def _load_rule(path: str) -> Rule:
    with open(path, "rb") as f:
        d = tomllib.load(f)
    where = os.path.basename(path)
    for key in (
        "id",
        "name",
        "category",
        "effect",
        "stage",
        "summary",
        "message",
        "fix",
    ):
        if key not in d:
            raise RuleDataError(f"{where}: missing key {key!r}")
    if not _ID.match(d["id"]) or where != d["id"] + ".toml":
        raise RuleDataError(f"{where}: id {d['id']!r} must be XX000 and match the file name")
    if not _NAME.match(d["name"]):
        raise RuleDataError(f"{where}: name {d['name']!r} must be kebab-case")
    if d["category"] not in CATEGORIES:
        raise RuleDataError(f"{where}: unknown category {d['category']!r}")
    if "severity" in d:
        raise RuleDataError(f"{where}: severity follows from effect; remove the key")
    says = d.get("kernel_says", "")
    if isinstance(says, str):
        says = {"default": says}
    return Rule(
        d["id"],
        d["name"],
        d["category"],
        SEVERITY_OF_EFFECT[Effect(d["effect"])],
        Effect(d["effect"]),
        d["stage"],
        d["summary"].strip(),
        d["message"].strip(),
        d["fix"].strip(),
        says,
        d.get("taint") or None,
        d.get("errno") or None,
        d.get("title", ""),
        tuple(d.get("identity", ())),
        bool(d.get("exclusive", False)),
        d.get("data", {}),
        d.get("docs", {}),
        path,
    )


# More directories of rule files, read after the shipped one: the hook through which a test
# (or a plugin) adds a rule without touching rules/. Clear the caches after changing it.
EXTRA_RULE_DIRS: list[str] = []


def _rule_files() -> list[str]:
    return [
        os.path.join(directory, name)
        for directory in (rules_dir(), *EXTRA_RULE_DIRS)
        for name in sorted(os.listdir(directory))
        if name.endswith(".toml") and _ID.match(name.removesuffix(".toml"))
    ]


@cache
def all_rules() -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    for path in _rule_files():
        rule = _load_rule(path)
        if rule.id in rules:
            raise RuleDataError(f"{rule.id} defined twice: {rules[rule.id].path} and {path}")
        rules[rule.id] = rule
    rules = dict(sorted(rules.items()))
    names = [r.name for r in rules.values()]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RuleDataError(f"duplicate rule names: {', '.join(sorted(dupes))}")
    return rules


@cache
def rule(rule_id: str) -> Rule:
    """One rule by exact ID, reading only its own file: a run touches a handful of rules,
    and parsing all of them would be most of a one-module run's time."""
    if not _ID.match(rule_id):
        raise KeyError(rule_id)
    for directory in (rules_dir(), *EXTRA_RULE_DIRS):
        path = os.path.join(directory, rule_id + ".toml")
        if os.path.isfile(path):
            return _load_rule(path)
    raise KeyError(rule_id)


def get_rule(key: str) -> Rule | None:
    """A rule by ID (``MV001``, any case) or kebab name."""
    rules = all_rules()
    if key.upper() in rules:
        return rules[key.upper()]
    for rule in rules.values():
        if rule.name == key:
            return rule
    return None


@cache
def loader_data() -> dict[str, Any]:
    with open(os.path.join(rules_dir(), "loader.toml"), "rb") as f:
        return tomllib.load(f)


@cache
def arch_data() -> dict[str, dict[str, Any]]:
    directory = os.path.join(rules_dir(), "arch")
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".toml"):
            with open(os.path.join(directory, name), "rb") as f:
                d = tomllib.load(f)
            out[d["arch"]] = d
    return out


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def generation_for(version: tuple[int, int, int]) -> tuple[str, bool]:
    """The loader generation a kernel version behaves as, and whether that is verified.

    Verified means the version's series is the one the generation was read from.
    """
    gens = loader_data()["generations"]
    best = None
    for name, g in gens.items():
        if version[:2] >= _version_tuple(g["applies_from"]) and (
            best is None
            or _version_tuple(g["applies_from"]) > _version_tuple(gens[best]["applies_from"])
        ):
            best = name
    if best is None:
        best = min(gens, key=lambda n: _version_tuple(gens[n]["applies_from"]))
    return best, version[:2] == _version_tuple(best)[:2]


def stage_order(generation: str) -> dict[str, int]:
    order = loader_data()["generations"][generation]["order"]
    return {stage: i for i, stage in enumerate(order)}
