"""module_sig_check(): the first thing load_module() does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from abicheck import ruledata
from abicheck.checks import check
from abicheck.context import CheckContext
from abicheck.model import Effect, Finding, ModuleSignature

LOCKDOWN_SAYS = "Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7"


def _rejection(ctx: CheckContext, reason: str) -> tuple[str, str] | None:
    """(kernel message, errno) when a non-fatal signature problem is fatal here.

    module_sig_check(): "unsigned module", "module with unsupported crypto" and "module
    with unavailable key" are refused when enforcing (EKEYREJECTED), else under lockdown
    (EPERM from security_locked_down(LOCKDOWN_MODULE_SIGNATURE)).
    """
    if ctx.run.assumptions.enforcing(ctx.target):
        return f"Loading of {reason} is rejected", "EKEYREJECTED"
    if ctx.run.assumptions.lockdown_mode(ctx.target):
        return LOCKDOWN_SAYS, "EPERM"
    return None


def _evidence(ctx: CheckContext) -> dict[str, Any]:
    a = ctx.run.assumptions
    if ctx.target.enabled("MODULE_SIG_FORCE"):
        why = "CONFIG_MODULE_SIG_FORCE=y"
    elif a.sig_enforce:
        why = "enforced (--assume-sig-enforce)"
    elif ctx.run.assumptions.lockdown_mode(ctx.target):
        why = f"lockdown={a.lockdown_mode(ctx.target)}"
    else:
        why = "not enforced"
    return {"enforcement": why}


@check("SG001")
def unsigned_module(ctx: CheckContext) -> Iterator[Finding]:
    if ctx.module.signature is not None or not ctx.target.enabled("MODULE_SIG"):
        return
    rejected = _rejection(ctx, "unsigned module")
    if rejected:
        says, errno = rejected
        yield ctx.finding(
            evidence=_evidence(ctx), effect=Effect.REFUSE, kernel_says=says, errno=errno
        )
    else:
        yield ctx.finding(evidence=_evidence(ctx), stage="taint_unsigned")


def _pkcs7_refusal(ctx: CheckContext, sig: ModuleSignature) -> dict[str, str] | None:
    """Why this kernel's pkcs7_parse_message()/pkcs7_verify() fail on a well-framed
    signature: errno, kernel_says and problem, or None when they do not.

    The parse stops at the first failing callback, so an unsupported digest (met at the
    SignerInfo's digestAlgorithm) hides any later error, and an unsupported public-key
    algorithm hides the errors after it. ENOPKG is the one outcome here that is not fatal
    without enforcement (module_sig_check(): "module with unsupported crypto").
    """
    data = ruledata.rule("SG002").data
    gen = ctx.generation
    unsupported: list[tuple[str, dict[str, str]]] = []
    if sig.digest_oid and sig.digest_oid not in data["digest_algos"][gen]:
        unsupported.append(
            ("digest_algo", _enopkg("digest", sig.digest_oid, "Unsupported digest algo"))
        )
    if sig.pkey_oid and sig.pkey_oid not in data["pkey_algos"][gen]:
        unsupported.append(
            ("pkey_algo", _enopkg("public-key", sig.pkey_oid, "Unsupported pkey algo"))
        )
    passed = {"": 0, "digest_algo": 1, "pkey_algo": 2}
    if sig.pkcs7_errno is not None:
        error = {
            "errno": sig.pkcs7_errno,
            "kernel_says": sig.pkcs7_says,
            "problem": sig.pkcs7_problem,
        }
        for where, enopkg in unsupported:
            if passed[where] <= passed[sig.pkcs7_after]:
                return enopkg
        return error
    if unsupported:
        return unsupported[0][1]
    authattrs = data["authattrs"].get(gen)
    if sig.has_authattrs and authattrs:
        return {
            "errno": authattrs["errno"],
            "kernel_says": authattrs["kernel_says"],
            "problem": "the PKCS#7 SignerInfo has authenticated attributes, which "
            "module signatures must not have (sign-file never adds them)",
        }
    return None


def _enopkg(what: str, oid: str, says: str) -> dict[str, str]:
    return {
        "errno": "ENOPKG",
        "kernel_says": says,
        "problem": f"the {what} algorithm {oid} is not one this kernel's PKCS#7 parser supports",
    }


def _refused_signature(ctx: CheckContext, sig: ModuleSignature | None) -> bool:
    """Whether SG002 speaks for this signature, so that SG003-SG005 stay silent."""
    return sig is not None and (sig.problem is not None or _pkcs7_refusal(ctx, sig) is not None)


def _unsupported_crypto(ctx: CheckContext, problem: str, says: str) -> Iterator[Finding]:
    """-ENOPKG is not fatal: "module with unsupported crypto" unless enforced."""
    rejected = _rejection(ctx, "module with unsupported crypto")
    if rejected:
        yield ctx.finding(
            evidence={"problem": problem},
            effect=Effect.REFUSE,
            kernel_says=says + "\n" + rejected[0],
            errno=rejected[1],
        )
    else:
        yield ctx.finding(
            evidence={"problem": problem},
            effect=Effect.TAINT,
            taint="E",
            stage="taint_unsigned",
            kernel_says=says,
            errno="ENOPKG",
        )


@check("SG002")
def signature_malformed(ctx: CheckContext) -> Iterator[Finding]:
    sig = ctx.module.signature
    if sig is None or not ctx.target.enabled("MODULE_SIG"):
        return
    if sig.problem is None:
        refusal = _pkcs7_refusal(ctx, sig)
        if refusal is None:
            return
        if refusal["errno"] == "ENOPKG":
            yield from _unsupported_crypto(ctx, refusal["problem"], refusal["kernel_says"])
        else:
            # every other error of verify_pkcs7_signature() is fatal, enforced or not
            yield ctx.finding(
                evidence={"problem": refusal["problem"]},
                kernel_says=refusal["kernel_says"],
                errno=refusal["errno"],
            )
        return
    if "id_type" in sig.problem:
        says = "module: not signed with expected PKCS#7 message"
        yield from _unsupported_crypto(ctx, sig.problem, says)
        return
    says = (
        "module: PKCS#7 signature info has unexpected non-zero params"
        if "non-zero" in sig.problem
        else ""
    )
    yield ctx.finding(evidence={"problem": sig.problem}, kernel_says=says)


@check("SG003")
def signature_key(ctx: CheckContext) -> Iterator[Finding]:
    sig = ctx.module.signature
    if sig is None or _refused_signature(ctx, sig) or not ctx.target.enabled("MODULE_SIG"):
        return
    if sig.verification not in (None, "trusted"):
        return  # SG004/SG005 say what is wrong
    trust = (
        f"verified with {sig.verified_by}"
        if sig.verification == "trusted"
        else "whether the kernel's keyring holds this key is not in its headers; assumed it "
        "does (give --trusted-keys to decide)"
    )
    yield ctx.finding(
        evidence={
            "signer": sig.signer or "(unknown)",
            "key_id": sig.key_id or "(none)",
            "hash_algo": sig.hash_algo or "(unknown)",
            "trust": trust,
        }
    )


@check("SG004")
def signature_key_unknown(ctx: CheckContext) -> Iterator[Finding]:
    sig = ctx.module.signature
    if (
        sig is None
        or sig.verification not in ("unknown-key", "unsupported")
        or _refused_signature(ctx, sig)
        or not ctx.target.enabled("MODULE_SIG")
    ):
        return
    reason = (
        "module with unavailable key"
        if sig.verification == "unknown-key"
        else "module with unsupported crypto"
    )
    facts: dict[str, Any] = {
        "signer": sig.signer or "(unknown)",
        "key_id": sig.key_id or "(none)",
        "count": ctx.run.assumptions.trusted_keys or "given",
        "detail": sig.verified_by or "",
    }
    rejected = _rejection(ctx, reason)
    if rejected:
        yield ctx.finding(
            evidence=facts,
            effect=Effect.REFUSE,
            stage="signature",
            kernel_says=rejected[0],
            errno=rejected[1],
        )
    else:
        yield ctx.finding(evidence=facts)


@check("SG005")
def signature_invalid(ctx: CheckContext) -> Iterator[Finding]:
    sig = ctx.module.signature
    if (
        sig is None
        or sig.verification != "bad-signature"
        or _refused_signature(ctx, sig)
        or not ctx.target.enabled("MODULE_SIG")
    ):
        return
    yield ctx.finding(
        evidence={"signer": sig.signer or "(unknown)", "detail": sig.verified_by or ""}
    )
