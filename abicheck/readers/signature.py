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

from abicheck.model import ModuleSignature

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


def has_marker(buf: bytes | memoryview, size: int) -> bool:
    n = len(MARKER)
    return size > n and bytes(buf[size - n : size]) == MARKER


def parse_signature(
    buf: bytes | memoryview, size: int, certs: list | None = None
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
        info = parse_signer_info(blob)
        verification = verified_by = None
        if certs is not None:
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
            info and info.signer,
            info and info.key_id,
            info and info.hash_algo,
            verification,
            verified_by,
        )
    return sig


# -- a minimal DER walker, enough for PKCS#7 SignedData → SignerInfo ----------------


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise ValueError("DER element overruns its container")
    return tag, pos, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        tag, cs, ce = _tlv(data, start)
        out.append((tag, cs, ce))
        start = ce
    return out


def _oid(raw: bytes) -> str:
    parts = [raw[0] // 40, raw[0] % 40]
    value = 0
    for b in raw[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


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


def parse_signer_info(blob: bytes) -> SignerInfo | None:
    """The first SignerInfo of a PKCS#7/CMS SignedData, or None if unparseable."""
    try:
        _, cs, ce = _tlv(blob, 0)  # ContentInfo
        content = _children(blob, cs, ce)
        _, sds, sde = _tlv(blob, content[1][1])  # [0] EXPLICIT SignedData
        signed_data = _children(blob, sds, sde)
        signer_infos = signed_data[-1]  # SET OF SignerInfo
        first = _children(blob, signer_infos[1], signer_infos[2])[0]
        info = _children(blob, first[1], first[2])
        sid, digest_alg = info[1], info[2]
        signer = key_id = issuer_der = serial = skid = None
        if sid[0] == 0x30:  # IssuerAndSerialNumber
            issuer, serial_el = _children(blob, sid[1], sid[2])[:2]
            issuer_der = _element(blob, issuer)
            for rdn in _children(blob, issuer[1], issuer[2]):
                for atv in _children(blob, rdn[1], rdn[2]):
                    typ, val = _children(blob, atv[1], atv[2])[:2]
                    if _oid(blob[typ[1] : typ[2]]) == _OID_COMMON_NAME:
                        signer = blob[val[1] : val[2]].decode("utf-8", "replace")
            raw_serial = blob[serial_el[1] : serial_el[2]]
            serial = int.from_bytes(raw_serial, "big", signed=True)
            key_id = _hex(raw_serial.lstrip(b"\0"))
        elif sid[0] == 0x80:  # [0] SubjectKeyIdentifier
            skid = blob[sid[1] : sid[2]]
            key_id = _hex(skid)
        alg_oid = _children(blob, digest_alg[1], digest_alg[2])[0]
        hash_algo = _HASH_OIDS.get(_oid(blob[alg_oid[1] : alg_oid[2]]))
        rest = info[3:]
        signed_attrs = None
        if rest and rest[0][0] == 0xA0:
            signed_attrs = _element(blob, rest[0])
            rest = rest[1:]
        signature = blob[rest[1][1] : rest[1][2]]  # after signatureAlgorithm
        return SignerInfo(
            signer, key_id, hash_algo, issuer_der, serial, skid, signed_attrs, signature
        )
    except (IndexError, ValueError):
        return None


def _element(blob: bytes, child: tuple[int, int, int]) -> bytes:
    """The whole DER element (tag and length included) of a parsed child."""
    _tag, cs, ce = child
    start = cs - 2
    while _tlv(blob, start)[1:] != (cs, ce):
        start -= 1
    return blob[start:ce]


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
    algo = {
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
