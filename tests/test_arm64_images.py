"""arm64 kernel images: Debian's raw Image, and (made here from it, so synthetic) the
Image.gz other distributions ship and an EFI zboot image (CONFIG_EFI_ZBOOT), as
drivers/firmware/efi/libstub/zboot-header.S lays it out.

Each gives the same BTF (struct module as Debian's 6.1.0-47-arm64 has it: 896 bytes,
init at 312, exit at 832) and the same banner.
"""

from __future__ import annotations

import gzip
import struct

import pytest
from conftest import kernel

from abicheck.readers.btf import BtfError, btf_from_file
from abicheck.readers.vmlinuz import VmlinuzError, arm64_image, btf_in_image
from abicheck.targets.layouts import identify_image


@pytest.fixture(scope="module")
def arm64(testdata) -> dict:
    if "6.1-a-arm64" not in testdata["kernels"]:
        pytest.skip("arm64 kernels not fetched: run `python tools/testdata.py all`")
    return kernel(testdata, "6.1-a-arm64")


def _struct_module(path: str) -> tuple[int, int, int]:
    btf = btf_from_file(path)
    layout = btf.struct_layout(btf.find_struct("module"), "btf")
    return layout.size, layout.member("init").offset, layout.member("exit").offset


def _zboot(image: bytes, comp: bytes = b"gzip") -> bytes:
    payload = gzip.compress(image, compresslevel=1, mtime=0)
    header = bytearray(0x40)
    header[0:2] = b"MZ"
    header[4:8] = b"zimg"
    struct.pack_into("<II", header, 8, len(header), len(payload))
    header[0x18 : 0x18 + len(comp) + 1] = comp + b"\0"
    return bytes(header) + payload


def test_raw_image(arm64):
    assert _struct_module(arm64["vmlinuz"]) == (896, 312, 832)
    ident = identify_image(arm64["vmlinuz"])
    assert (ident.kind, ident.release) == ("Image", "6.1.0-47-arm64")
    assert ident.uts_version == "#1 SMP Debian 6.1.170-3 (2026-05-08)" or ident.uts_version


def test_image_gz_and_zboot_synthetic(arm64, tmp_path):
    with open(arm64["vmlinuz"], "rb") as f:
        image = f.read()
    gz = tmp_path / "synthetic-Image.gz"
    gz.write_bytes(gzip.compress(image, compresslevel=1, mtime=0))
    zboot = tmp_path / "synthetic-vmlinuz.efi"
    zboot.write_bytes(_zboot(image))
    for path in (gz, zboot):
        assert _struct_module(str(path)) == (896, 312, 832)
        assert identify_image(str(path)).release == "6.1.0-47-arm64"


def test_broken_arm64_images_are_one_clear_error(arm64, tmp_path):
    with open(arm64["vmlinuz"], "rb") as f:
        image = f.read()
    unknown = tmp_path / "synthetic-zboot-unknown.efi"
    unknown.write_bytes(_zboot(image[:4096], b"brotli"))
    with pytest.raises(VmlinuzError, match="compressed with 'brotli'"):
        arm64_image(unknown.read_bytes())
    cut = tmp_path / "synthetic-zboot-cut.efi"
    cut.write_bytes(_zboot(image[: 1 << 20])[:5000])
    with pytest.raises(BtfError, match="runs past the end of the file: truncated"):
        btf_from_file(str(cut))
    nobtf = tmp_path / "synthetic-Image-nobtf"
    nobtf.write_bytes(image[: 1 << 20])  # the header and the first MiB of code: no .BTF
    assert btf_in_image(nobtf.read_bytes()) is None
    with pytest.raises(BtfError, match="an arm64 Image without BTF"):
        btf_from_file(str(nobtf))
