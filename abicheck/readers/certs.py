"""X.509 certificates a kernel trusts, for --trusted-keys.

Accepted: PEM (one or many certificates), DER, or a kernel image (vmlinux ELF, or a
vmlinuz bzImage, decompressed first) whose built-in keyring (``system_certificate_list``)
is found by scanning for DER certificates. Uses the ``cryptography`` package.
"""

from __future__ import annotations

import re

from cryptography import x509

from abicheck.errors import AbicheckError

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class CertificateError(AbicheckError):
    pass


def load_certificates(path: str) -> list[x509.Certificate]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CertificateError(path, f"cannot read: {e.strerror or e}") from None
    if b"-----BEGIN CERTIFICATE-----" in data:
        certs = [x509.load_pem_x509_certificate(m.group(0)) for m in _PEM.finditer(data)]
    elif data[:4] == b"\x7fELF":
        certs = scan_der_certificates(data)
    elif data[:1] == b"\x30":
        try:
            certs = [x509.load_der_x509_certificate(data)]
        except ValueError:
            certs = scan_der_certificates(data)
    else:
        from abicheck.readers.vmlinuz import VmlinuzError, extract_vmlinux

        try:
            certs = scan_der_certificates(extract_vmlinux(data))
        except VmlinuzError as e:
            raise CertificateError(path, f"not a certificate or kernel image: {e}") from None
    if not certs:
        raise CertificateError(path, "no X.509 certificate found")
    return certs


def scan_der_certificates(blob: bytes) -> list[x509.Certificate]:
    """Certificates embedded in a binary (a kernel's built-in keyring)."""
    out: list[x509.Certificate] = []
    seen: set[bytes] = set()
    pos = blob.find(b"\x30\x82")
    while pos >= 0:
        length = int.from_bytes(blob[pos + 2 : pos + 4], "big")
        # a certificate's first element is the tbsCertificate SEQUENCE
        if 200 < length < 16384 and blob[pos + 4 : pos + 6] == b"\x30\x82":
            der = blob[pos : pos + 4 + length]
            if der not in seen:
                try:
                    out.append(x509.load_der_x509_certificate(der))
                    seen.add(der)
                    pos = blob.find(b"\x30\x82", pos + 4 + length)
                    continue
                except ValueError:
                    pass
        pos = blob.find(b"\x30\x82", pos + 1)
    return out
