"""Stable identities of findings, for SARIF partialFingerprints and --baseline.

A fingerprint must survive a rebuild and a move of the checkout: it hashes the rule ID,
the module's path relative to the project root, the kernel release, and the evidence
that names *what* is wrong (the symbol, struct, option, section, parameter ...), never
addresses, counts or absolute paths.
"""

from __future__ import annotations

import hashlib
import json

from abicheck.model import Finding

IDENTITY = (
    "symbol",
    "struct",
    "option",
    "section",
    "param",
    "namespace",
    "check",
    "member",
    "compression",
    "license",
    "module_vermagic",
    "kernel_vermagic",
    "owner",
)


def fingerprint(finding: Finding, module_rel: str, release: str) -> str:
    ident = {
        k: finding.evidence[k] for k in IDENTITY if isinstance(finding.evidence.get(k), str | int)
    }
    blob = json.dumps([finding.rule, module_rel.replace("\\", "/"), release, ident], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
