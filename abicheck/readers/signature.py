"""The signature block appended to a signed module.

Layout at the end of the file (include/linux/module_signature.h, scripts/sign-file.c)::

    <ELF image> <PKCS#7 DER, sig_len bytes> <struct module_signature, 12 bytes>
    "~Module signature appended~\\n"

``struct module_signature { u8 algo, hash, id_type, signer_len, key_id_len; u8 __pad[3];
__be32 sig_len; }``. The kernel's mod_check_sig() (kernel/module_signature.c) rejects the
block as malformed (EBADMSG) when sig_len does not fit, or when any field but id_type and
sig_len is non-zero; an id_type other than PKEY_ID_PKCS7 gives ENOPKG.

Signer, key id and hash algorithm are read from the PKCS#7 SignerInfo as kmod's
``modinfo`` shows them (issuer commonName, serial number, digest algorithm).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from abicheck.model import ModuleSignature

if TYPE_CHECKING:
    from mmap import mmap

MARKER = b"~Module signature appended~\n"
PKEY_ID_PKCS7 = 2
_SIG_STRUCT = struct.Struct(">BBBBB3sI")

_HASH_OIDS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.8": "sha3-256",
    "2.16.840.1.101.3.4.2.9": "sha3-384",
    "2.16.840.1.101.3.4.2.10": "sha3-512",
    "1.2.156.10197.1.401": "sm3",
}
_OID_COMMON_NAME = "2.5.4.3"


def has_marker(buf: bytes | memoryview | mmap, size: int) -> bool:
    n = len(MARKER)
    return size > n and bytes(buf[size - n : size]) == MARKER


def parse_signature(
    buf: bytes | memoryview | mmap, size: int, certs: list | None = None
) -> ModuleSignature | None:
    """The signature block of a module image of ``size`` bytes, or None if unsigned.

    Follows module_sig_check()/mod_verify_sig()/mod_check_sig() for what counts as
    malformed; ``signed_size`` is the ELF length the kernel goes on with.
    """
    if not has_marker(buf, size):
        return None
    modlen = size - len(MARKER)
    if modlen <= _SIG_STRUCT.size:
        return ModuleSignature(
            0, 0, 0, 0, 0, b"", 0, modlen, "the file is too short to hold struct module_signature"
        )
    algo, hash_, id_type, signer_len, key_id_len, pad, sig_len = _SIG_STRUCT.unpack_from(
        buf, modlen - _SIG_STRUCT.size
    )
    problem = None
    signed_size = modlen
    if sig_len >= modlen - _SIG_STRUCT.size:
        problem = f"sig_len {sig_len} does not fit in the {modlen}-byte module"
    elif id_type != PKEY_ID_PKCS7:
        problem = f"id_type {id_type} is not PKEY_ID_PKCS7 ({PKEY_ID_PKCS7})"
    elif algo or hash_ or signer_len or key_id_len or any(pad):
        problem = "PKCS#7 signature info has unexpected non-zero params"
    else:
        signed_size = modlen - sig_len - _SIG_STRUCT.size
    sig = ModuleSignature(
        algo, hash_, id_type, signer_len, key_id_len, bytes(pad), sig_len, signed_size, problem
    )
    if problem is None:
        blob = bytes(buf[signed_size : signed_size + sig_len])
        p7 = parse_pkcs7(blob)
        info = p7.signer
        verification = verified_by = None
        if certs is not None and p7.errno is None:
            verification, verified_by = verify(bytes(buf[:signed_size]), blob, certs)
        sig = ModuleSignature(
            algo,
            hash_,
            id_type,
            signer_len,
            key_id_len,
            bytes(pad),
            sig_len,
            signed_size,
            None,
            info.signer if info else None,
            info.key_id if info else None,
            info.hash_algo if info else None,
            verification,
            verified_by,
            p7.errno,
            p7.kernel_says,
            p7.problem,
            p7.after,
            info.digest_oid if info else "",
            info.pkey_oid if info else "",
            p7.has_authattrs,
        )
    return sig


# -- PKCS#7, parsed as strictly as the kernel's pkcs7_parse_message() ------------------
#
# The kernel decodes the blob with lib/asn1_decoder.c against crypto/asymmetric_keys/
# pkcs7.asn1, and the callbacks in pkcs7_parser.c refuse what they do not support.
# asn1crypto (a maintained DER/BER library, imported only for signed modules: it costs
# about 45 ms) decodes the structure; the callbacks' checks are modelled below, in the
# order the decoder meets them, because that order decides which errno the kernel returns.

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_MS_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME = "1.2.840.113549.1.9.5"
OID_SMIME_CAPABILITIES = "1.2.840.113549.1.9.15"
OID_MS_SP_OPUS_INFO = "1.3.6.1.4.1.311.2.1.12"
OID_MS_STATEMENT_TYPE = "1.3.6.1.4.1.311.2.1.11"
# lib/asn1_decoder.c asn1_ber_decoder(): "if (datalen > 65535) return -EMSGSIZE"
ASN1_MAX_LEN = 65535


@dataclass(frozen=True, slots=True)
class SignerInfo:
    signer: str | None
    key_id: str | None
    hash_algo: str | None
    issuer_der: bytes | None  # the issuer Name, for matching a certificate
    serial: int | None
    subject_key_id: bytes | None
    signed_attrs: bytes | None  # DER of [0] IMPLICIT signedAttrs, if present
    signature: bytes
    digest_oid: str = ""
    pkey_oid: str = ""


@dataclass(frozen=True, slots=True)
class Pkcs7:
    """What pkcs7_parse_message() and the module-independent part of pkcs7_verify() make
    of a signature blob: ``errno``/``kernel_says`` when the kernel's parser refuses it for
    every kernel generation; the algorithm OIDs, which each generation supports
    differently (checked against rule data); whether authenticated attributes are
    present, which the module verifier refuses in 6.1 and 6.12."""

    errno: str | None
    kernel_says: str
    problem: str
    # which algorithm callback the decoder has passed when the error happens: "" (before
    # the SignerInfo's digestAlgorithm), "digest_algo" or "pkey_algo". An algorithm the
    # kernel does not support (ENOPKG) stops the parse where it is met, so this decides
    # which of the two errors the kernel returns.
    after: str = ""
    signer: SignerInfo | None = None
    signer_count: int = 0
    has_authattrs: bool = False


def _fail(errno: str, problem: str, says: str = "", after: str = "") -> Pkcs7:
    return Pkcs7(errno, says, problem, after)


def parse_pkcs7(blob: bytes) -> Pkcs7:
    """Parse a module's PKCS#7 blob as pkcs7_parse_message() does; never raises."""
    if len(blob) > ASN1_MAX_LEN:
        return _fail(
            "EMSGSIZE",
            f"the PKCS#7 message is {len(blob)} bytes; the kernel's "
            f"ASN.1 decoder takes at most {ASN1_MAX_LEN}",
        )
    from asn1crypto import cms, core, x509

    try:
        ci = cms.ContentInfo.load(blob)  # trailing bytes are ignored, as by the kernel
        ci.dump(force=True)  # decode every element now, not lazily
        if ci["content_type"].dotted != OID_SIGNED_DATA:
            return _fail(
                "EINVAL",
                f"content type {ci['content_type'].dotted} is not signedData",
                "PKCS7: Only support pkcs7_signedData type",
            )
        sd = ci["content"]
        if isinstance(sd, core.Void) or not sd.contents:
            # no SignedData, hence no SignerInfo: pkcs7_check_authattrs() finds none
            return _fail(
                "EINVAL",
                "the message has no SignedData",
                "PKCS7: Inconsistently supplied authAttrs",
            )
        version = sd["version"].contents
        if version not in (b"\x01", b"\x03"):
            return _fail(
                "EINVAL",
                f"SignedData version {version.hex()} is not 1 or 3",
                "PKCS7: Unsupported SignedData version",
            )
        eci = sd["encap_content_info"]
        data_type = eci["content_type"].dotted
        if data_type not in (OID_DATA, OID_MS_INDIRECT_DATA):
            return _fail(
                "EINVAL",
                f"encapsulated content type {data_type} is not data",
                "PKCS7: Unsupported data type",
            )
        for cert in sd["certificates"] if sd["certificates"].contents else ():
            if not isinstance(cert.chosen, x509.Certificate):
                return _fail("EBADMSG", "an embedded certificate is not an X.509 certificate")
            _ = cert.chosen.native  # pkcs7_extract_cert() → x509_cert_parse()
        signers = []
        have_authattrs = None
        for si in sd["signer_infos"]:
            failed = _signer_failure(si, version, data_type)
            if failed is not None:
                return failed
            signers.append(_signer_info(si))
            has = bool(si["signed_attrs"].contents)
            if have_authattrs is not None and has != have_authattrs:
                return _fail(
                    "EINVAL",
                    "some signers have authenticated attributes and some do not",
                    "PKCS7: Inconsistently supplied authAttrs",
                    "pkey_algo",
                )
            have_authattrs = has
        if not signers:
            return _fail(
                "EINVAL",
                "the SignedData has no SignerInfo",
                "PKCS7: Inconsistently supplied authAttrs",
            )
    except Exception as e:  # any decoding failure of hostile bytes: the kernel's -EBADMSG
        return _fail("EBADMSG", f"the PKCS#7 message does not decode ({_short(e)})")
    # verify_pkcs7_message_sig() → pkcs7_supply_detached_data(), then pkcs7_verify()
    if eci["content"].contents:
        return Pkcs7(
            "EBADMSG",
            "PKCS#7 signature with non-detached data",
            "the signature embeds its content instead of signing the module detached",
            "pkey_algo",
            signers[0],
            len(signers),
            bool(have_authattrs),
        )
    if data_type != OID_DATA:
        return Pkcs7(
            "EKEYREJECTED",
            "PKCS7: Invalid module sig (not pkcs7-data)",
            "the signed content is not pkcs7-data",
            "pkey_algo",
            signers[0],
            len(signers),
            bool(have_authattrs),
        )
    return Pkcs7(None, "", "", "", signers[0], len(signers), bool(have_authattrs))


def _signer_failure(si: Any, sd_version: bytes, data_type: str) -> Pkcs7 | None:
    """pkcs7_note_signerinfo_version(), the authenticated-attribute callbacks and
    pkcs7_note_signed_info(), for one SignerInfo. The algorithm OIDs are left to the
    checks: which ones are supported depends on the kernel (ENOPKG)."""
    version = si["version"].contents
    if version not in (b"\x01", b"\x03"):
        return _fail(
            "EINVAL",
            f"SignerInfo version {version.hex()} is not 1 or 3",
            "PKCS7: Unsupported SignerInfo version",
        )
    if (version == b"\x01") != (sd_version == b"\x01"):
        return _fail(
            "EBADMSG",
            "SignerInfo and SignedData versions disagree",
            "PKCS7: SignedData-SignerInfo version mismatch",
        )
    attrs = si["signed_attrs"]
    if attrs.contents:
        seen: set[str] = set()
        for attr in attrs:
            oid = attr["type"].dotted
            values = attr["values"]
            for value in values:
                if oid in seen:
                    return _fail(
                        "EKEYREJECTED",
                        f"authenticated attribute {oid} repeats",
                        "PKCS7: Repeated/multivalue AuthAttrs not permitted",
                        "digest_algo",
                    )
                if oid in (
                    OID_CONTENT_TYPE,
                    OID_MESSAGE_DIGEST,
                    OID_SIGNING_TIME,
                    OID_SMIME_CAPABILITIES,
                    OID_MS_SP_OPUS_INFO,
                    OID_MS_STATEMENT_TYPE,
                ):
                    seen.add(oid)
                raw = value.dump()
                if oid == OID_CONTENT_TYPE and raw[2:] != _oid_der(data_type):
                    return _fail(
                        "EBADMSG",
                        "the contentType attribute differs from the content",
                        "PKCS7: Mismatch between global data type and sinfo",
                        "digest_algo",
                    )
                if oid == OID_MESSAGE_DIGEST and raw[:1] != b"\x04":
                    return _fail(
                        "EBADMSG",
                        "the messageDigest attribute is not an OCTET STRING",
                        "",
                        "digest_algo",
                    )
                if oid == OID_SMIME_CAPABILITIES and data_type != OID_MS_INDIRECT_DATA:
                    return _fail(
                        "EKEYREJECTED",
                        "an S/MIME capabilities attribute is present",
                        "PKCS7: S/MIME Caps only allowed with Authenticode",
                        "digest_algo",
                    )
                if oid in (OID_MS_SP_OPUS_INFO, OID_MS_STATEMENT_TYPE) and (
                    data_type != OID_MS_INDIRECT_DATA
                ):
                    return _fail(
                        "EKEYREJECTED",
                        "an Authenticode attribute is present",
                        "PKCS7: Authenticode AuthAttrs only allowed with Authenticode",
                        "digest_algo",
                    )
        if OID_CONTENT_TYPE not in seen or OID_MESSAGE_DIGEST not in seen:
            return _fail(
                "EBADMSG",
                "contentType or messageDigest attribute missing",
                "PKCS7: Missing required AuthAttr",
                "digest_algo",
            )
    elif data_type == OID_MS_INDIRECT_DATA:
        return _fail(
            "EBADMSG",
            "Authenticode content without authenticated attributes",
            "PKCS7: Authenticode requires AuthAttrs",
            "pkey_algo",
        )
    return None


def _oid_der(dotted: str) -> bytes:
    from asn1crypto.core import ObjectIdentifier

    return ObjectIdentifier(dotted).contents


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:120]


def _signer_info(si: Any) -> SignerInfo:
    sid = si["sid"]
    signer = key_id = issuer_der = serial = skid = None
    if sid.name == "issuer_and_serial_number":
        ias = sid.chosen
        issuer = ias["issuer"]
        issuer_der = issuer.dump()
        for rdn in issuer.chosen:
            for atv in rdn:
                if atv["type"].dotted == _OID_COMMON_NAME:
                    v = atv["value"]
                    signer = v.native if isinstance(v.native, str) else None
        raw_serial = ias["serial_number"].contents
        serial = int.from_bytes(raw_serial, "big", signed=True)
        key_id = _hex(raw_serial.lstrip(b"\0"))
    else:
        skid = sid.chosen.contents
        key_id = _hex(skid)
    digest_oid = si["digest_algorithm"]["algorithm"].dotted
    attrs = si["signed_attrs"]
    return SignerInfo(
        signer,
        key_id,
        _HASH_OIDS.get(digest_oid),
        issuer_der,
        serial,
        skid,
        attrs.dump() if attrs.contents else None,
        si["signature"].contents,
        digest_oid,
        si["signature_algorithm"]["algorithm"].dotted,
    )


def parse_signer_info(blob: bytes) -> SignerInfo | None:
    """The first SignerInfo of a PKCS#7/CMS SignedData, or None if the kernel's parser
    would refuse the message."""
    p = parse_pkcs7(blob)
    return p.signer if p.errno is None else None


def verify(signed: bytes, blob: bytes, certs: list) -> tuple[str, str]:
    """Verify a module signature as the kernel's pkcs7_verify() would, against ``certs``.

    Returns (outcome, detail): "trusted" and the certificate's subject; "unknown-key" when
    no certificate matches the signer (the kernel's -ENOKEY); "bad-signature" when one
    matches but the signature does not verify (-EKEYREJECTED); "unsupported".
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtensionOID

    info = parse_signer_info(blob)
    if info is None:
        return "unsupported", "the PKCS#7 message could not be parsed"
    matching = []
    for cert in certs:
        if info.serial is not None and info.issuer_der is not None:
            if cert.serial_number == info.serial and cert.issuer.public_bytes() == info.issuer_der:
                matching.append(cert)
        elif info.subject_key_id is not None:
            try:
                ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
            except Exception:
                continue
            if ext.value.digest == info.subject_key_id:
                matching.append(cert)
    if not matching:
        return "unknown-key", "no trusted certificate matches the signer"
    algo: type[hashes.HashAlgorithm] | None = {
        "sha1": hashes.SHA1,
        "sha224": hashes.SHA224,
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
        "sha3-256": hashes.SHA3_256,
        "sha3-384": hashes.SHA3_384,
        "sha3-512": hashes.SHA3_512,
    }.get(info.hash_algo or "")
    if algo is None:
        return "unsupported", f"digest algorithm {info.hash_algo} is not supported here"
    data = signed
    if info.signed_attrs is not None:
        # the signature covers the attributes, re-tagged as a SET (RFC 5652 5.4); their
        # messageDigest must be the content's digest
        h = hashes.Hash(algo())
        h.update(signed)
        if h.finalize() not in info.signed_attrs:
            return "bad-signature", "the messageDigest attribute does not match the module"
        data = b"\x31" + info.signed_attrs[1:]
    cert = matching[0]
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(info.signature, data, padding.PKCS1v15(), algo())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(info.signature, data, ec.ECDSA(algo()))
        else:
            return "unsupported", f"{type(key).__name__} keys are not supported here"
    except InvalidSignature:
        return (
            "bad-signature",
            "the signature does not verify with " + cert.subject.rfc4514_string(),
        )
    return "trusted", cert.subject.rfc4514_string()


def _hex(raw: bytes) -> str:
    return ":".join(f"{b:02X}" for b in raw)
