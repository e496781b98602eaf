"""Kernel targets: headers directories, the running kernel, profiles."""

from __future__ import annotations

import glob
import os

import pytest
from conftest import sample_kernel

from abicheck.readers.cheader import Preprocessor, PreprocessorError
from abicheck.readers.module import read_module
from abicheck.targets.headers import target_from_headers
from abicheck.targets.profile import profile_dict, save_profile, target_from_profile
from abicheck.targets.running import target_from_running_kernel


def test_profile_carries_what_the_checks_need():
    t = target_from_profile(sample_kernel("6.1.0-47-amd64"))
    assert t.release == "6.1.0-47-amd64"
    assert t.version == (6, 1, 170)  # from include/generated/uapi/linux/version.h
    assert t.distribution == "debian"
    assert t.vermagic == "6.1.0-47-amd64 SMP preempt mod_unload modversions "
    assert t.vermagic_source == "include/linux/vermagic.h of the target's headers"
    assert t.exports["module_layout"].crc == 0x160C03AF
    assert t.exports["acpi_table_parse_cedt"].namespace == "ACPI"
    assert t.exports["ktime_get"].gpl_only
    assert t.exports["usb_stor_probe1"].owner == "drivers/usb/storage/usb-storage"
    assert t.config["CONFIG_MODVERSIONS"] == "y"
    assert t.config["CONFIG_MODULE_SIG_FORCE"] == "n"  # "# ... is not set"
    assert "CONFIG_NO_SUCH_OPTION" not in t.config
    assert t.source.endswith("6.1.0-47-amd64.json.gz")


def test_profile_round_trip(tmp_path):
    t = target_from_profile(sample_kernel("6.12.107+deb12-amd64"))
    out = tmp_path / "k.json.gz"
    save_profile(t, str(out))
    again = target_from_profile(str(out))
    assert profile_dict(again)["exports"] == profile_dict(t)["exports"]
    assert again.id == t.id  # identity is the kernel's, not the file's


def test_bad_profile_is_a_clear_error(tmp_path):
    from abicheck.errors import TargetError

    bad = tmp_path / "k.json"
    bad.write_text('{"abicheck_profile": 99}')
    with pytest.raises(TargetError, match="not an abicheck profile of format 1"):
        target_from_profile(str(bad))


def test_running_kernel_without_module_support(tmp_path):
    # A root with only a config, as on a minimal VM kernel: the config is read,
    # the missing headers are a note, not a crash.
    release = os.uname().release
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / f"config-{release}").write_text(
        "CONFIG_SMP=y\n# CONFIG_MODULES is not set\nCONFIG_X86_64=y\n"
    )
    t = target_from_running_kernel(root=str(tmp_path))
    assert t.kind == "running" and t.release == release
    assert t.config["CONFIG_MODULES"] == "n"
    assert t.exports is None
    assert any("no headers" in n for n in t.notes)


def test_preprocessor_conditionals_and_strings():
    pp = Preprocessor([], {"CONFIG_A": "1", "CONFIG_B_MODULE": "1", "CONFIG_N": "3"})
    pp.process("""
#if defined(CONFIG_A) && IS_ENABLED(CONFIG_B) && CONFIG_N >= 3
#define X "yes "
#elif defined CONFIG_A
#define X "no "
#else
#define X "never "
#endif
#ifndef CONFIG_C
#define Y "c-off"
#endif
#define Z X Y
""")
    assert pp.string("Z") == "yes c-off"
    with pytest.raises(PreprocessorError):
        pp.evaluate("1 +")


@pytest.mark.debian
@pytest.mark.parametrize("role", ["6.1-a", "6.1-b", "6.1-a-rt", "6.1-a-cloud", "6.12"])
def test_vermagic_composed_from_headers_matches_built_module(testdata, role):
    """The kernel's VERMAGIC_STRING, evaluated by abicheck from the headers, equals what
    Kbuild wrote into a module built against those headers."""
    k = testdata["kernels"][role]
    target = target_from_headers(k["headers"])
    module = read_module(os.path.join(testdata["built"][role], "hello.ko"))
    assert target.vermagic == module.info("vermagic")
    assert target.release == k["release"]
    assert target.distribution == "debian"


@pytest.mark.debian
@pytest.mark.parametrize("role", ["6.1-a", "6.12"])
def test_vermagic_matches_the_kernels_own_modules(testdata, role):
    k = testdata["kernels"][role]
    target = target_from_headers(k["headers"])
    some = sorted(glob.glob(os.path.join(k["modules"], "kernel", "lib", "*.ko*")))[:3]
    assert some
    for path in some:
        assert read_module(path).info("vermagic") == target.vermagic
