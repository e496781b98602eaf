"""The plain ``.config`` / ``auto.conf`` reader, for trees without Kconfig files.

Values stay what the file says: ``y``, ``m``, a number, or a quoted string with its
quotes. ``# CONFIG_FOO is not set`` is recorded as ``n``: a present ``n`` and an absent
option are different facts (the option did not exist, or was not visible).
"""

from __future__ import annotations

import re

_NOT_SET = re.compile(r"#\s*(CONFIG_[A-Za-z0-9_]+) is not set\s*$")


def parse_config(text: str) -> dict[str, str]:
    config: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = _NOT_SET.match(line)
            if m:
                config[m.group(1)] = "n"
            continue
        name, eq, value = line.partition("=")
        if eq and name.startswith("CONFIG_"):
            config[name] = value
    return config


def unquote(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value
