"""Every part-1 rule on the committed real samples: a failing and a passing case each.

The expected values (CRCs, symbols, strings) were read with the real tools: CRCs with
`modprobe --dump-modversions` on the module and `grep` in the kernel's Module.symvers,
vermagic with `modinfo -F vermagic`.
"""

from __future__ import annotations

import pytest
from conftest import check_json, finding, rules_of, sample, sample_kernel

K47 = sample_kernel("6.1.0-47-amd64")
K56 = sample_kernel("6.1.0-56-amd64")
K47RT = sample_kernel("6.1.0-47-rt-amd64")
K612 = sample_kernel("6.12.107+deb12-amd64")


def one(module: str, kernel: str) -> dict:
    doc = check_json([sample("modules", module)], [kernel])
    (result,) = doc["results"]
    return result


def test_clean_module_loads_tainted_out_of_tree_and_unsigned():
    r = one("hello.ko", K47)
    assert r["verdict"] == "loads-tainted"
    assert [t["letter"] for t in r["taints"]] == ["O", "E"]
    assert rules_of(r) == ["TN001", "SG001"]
    assert finding(r, "TN001")["kernel_says"] == "hello: loading out-of-tree module taints kernel."
    assert finding(r, "SG001")["kernel_says"] == (
        "hello: module verification failed: signature and/or required key missing - tainting kernel"
    )


def test_module_layout_crc_differs_between_debian_abis():
    r = one("hello.ko", K56)
    assert r["verdict"] == "refused"
    f = finding(r, "MV004")
    assert f["evidence"] == {
        "symbol": "module_layout",
        "module_crc": "0x160c03af",
        "kernel_crc": "0x9060323f",
    }
    assert f["kernel_says"] == "hello: disagrees about version of symbol module_layout"
    assert f["errno"] == "ENOEXEC"
    # check_modstruct_version() runs before check_modinfo(): refused before any taint
    assert r["taints"] == []
    assert rules_of(r)[0] == "MV004"


def test_rt_flavour_differs_in_vermagic_preempt_model():
    r = one("hello.ko", K47RT)
    assert r["verdict"] == "refused"
    assert rules_of(r)[:2] == ["MV004", "VM001"]
    vm = finding(r, "VM001")
    assert vm["evidence"]["module_vermagic"] == "6.1.0-47-amd64 SMP preempt mod_unload modversions "
    assert vm["evidence"]["kernel_vermagic"] == (
        "6.1.0-47-rt-amd64 SMP preempt_rt mod_unload modversions "
    )
    assert vm["evidence"]["release_compared"] is False  # __versions present: release skipped
    assert vm["evidence"]["differences"] == [
        {
            "component": "preempt",
            "module": "preempt",
            "kernel": "(absent)",
            "option": "CONFIG_PREEMPT_BUILD",
        },
        {
            "component": "preempt_rt",
            "module": "(absent)",
            "kernel": "preempt_rt",
            "option": "CONFIG_PREEMPT_RT",
        },
    ]
    assert vm["kernel_says"] == (
        "hello: version magic '6.1.0-47-amd64 SMP preempt mod_unload modversions ' should be "
        "'6.1.0-47-rt-amd64 SMP preempt_rt mod_unload modversions '"
    )


def test_vermagic_release_is_skipped_when_crcs_decide():
    # 6.1.0-47 vs 6.1.0-56: same flags, different release; with __versions the kernel
    # skips the release, so no VM001, only the CRC findings
    r = one("hello.ko", K56)
    assert "VM001" not in rules_of(r)


def test_symbol_crc_mismatch_against_6_12():
    r = one("hello.ko", K612)
    f = finding(r, "MV001")
    assert f["evidence"] == {
        "symbol": "_printk",
        "module_crc": "0x92997ed8",
        "kernel_crc": "0x122c3a7e",
        "owner": "vmlinux",
    }
    assert f["kernel_says"] == (
        "hello: disagrees about version of symbol _printk\nhello: Unknown symbol _printk (err -22)"
    )


def test_missing_versions_entry_is_refused_on_debian():
    r = one("hello_renamed_version.ko", K47)
    assert r["verdict"] == "refused"
    f = finding(r, "MV002")
    assert f["evidence"]["symbol"] == "_printk"
    assert f["evidence"]["kernel_crc"] == "0x92997ed8"
    assert f["evidence"]["distribution"] == "debian"
    assert f["severity"] == "error"
    assert f["kernel_says"].startswith("hello: no symbol version for _printk")


def test_missing_versions_section_is_force_loaded_with_taint_f():
    r = one("hello_noversions.ko", K47)
    assert r["verdict"] == "loads-tainted"
    f = finding(r, "MV003")
    assert f["kernel_says"] == "hello: module_layout: kernel tainted."
    assert f["taint"] == "F"
    assert [t["letter"] for t in r["taints"]] == ["F", "O", "E"]


def test_unknown_symbol():
    r = one("unknown_sym.ko", K47)
    assert r["verdict"] == "refused"
    f = finding(r, "SY001")
    assert f["evidence"] == {"symbol": "abicheck_no_such_export"}
    assert f["kernel_says"] == "unknown_sym: Unknown symbol abicheck_no_such_export (err -2)"
    assert f["errno"] == "ENOENT"


def test_gpl_only_symbol_under_proprietary_license():
    r = one("gplonly_prop.ko", K47)
    assert r["verdict"] == "refused"
    gp = finding(r, "GP001")
    assert gp["evidence"] == {"symbol": "ktime_get", "license": "BSD", "owner": "vmlinux"}
    # the kernel only says "Unknown symbol"; abicheck says why
    assert gp["kernel_says"] == "gplonly_user: Unknown symbol ktime_get (err -2)"
    assert "SY001" not in rules_of(r)
    assert finding(r, "LI001")["taint"] == "P"
    assert [t["letter"] for t in r["taints"]] == ["O", "P", "E"]


def test_proprietary_license_without_gpl_symbols_loads_tainted_p():
    r = one("prop_license.ko", K47)
    assert r["verdict"] == "loads-tainted"
    assert finding(r, "LI001")["kernel_says"] == (
        "prop_license: module license 'Proprietary' taints kernel."
    )
    assert "GP001" not in rules_of(r)


def test_namespace_without_import():
    r = one("ns_noimport.ko", K47)
    assert r["verdict"] == "refused"
    f = finding(r, "NS001")
    assert f["evidence"] == {
        "symbol": "acpi_table_parse_cedt",
        "namespace": "ACPI",
        "owner": "vmlinux",
        "imported": [],
    }
    assert f["kernel_says"].splitlines()[0] == (
        "ns_noimport: module uses symbol (acpi_table_parse_cedt) from namespace ACPI, "
        "but does not import it."
    )


def test_namespace_import_in_tree_passes():
    # ums-alauda imports USB_STORAGE for usb-storage's exports
    doc = check_json([sample("intree", "6.1.0-47-amd64", "ums-alauda.ko")], [K47])
    (r,) = doc["results"]
    assert r["verdict"] == "loads"
    assert "NS001" not in rules_of(r)
    dp = finding(r, "DP001")
    assert dp["evidence"]["owner"] == "drivers/usb/storage/usb-storage"
    assert dp["severity"] == "info"


def test_dependency_order_given_wrong_then_right():
    consumer = sample("modules", "dep_consumer.ko")
    provider = sample("modules", "dep_provider.ko")
    wrong = check_json([consumer, provider], [K47])["results"]
    assert wrong[0]["verdict"] == "refused"
    orders = [f for f in wrong[0]["findings"] if f["rule"] == "DP002"]
    assert [f["evidence"]["symbol"] for f in orders] == [
        "abicheck_provider_value",
        "abicheck_provider_ns_value",
    ]
    assert orders[0]["evidence"]["provider"] == "dep_provider"
    right = check_json([provider, consumer], [K47])["results"]
    assert [r["verdict"] for r in right] == ["loads-tainted", "loads-tainted"]
    assert not [f for f in right[1]["findings"] if f["severity"] == "error"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_file_given_twice_sits_at_both_positions(jobs, monkeypatch):
    """prove's referee loads dep_consumer.ko before its provider and again after it (the
    check command folds repeated paths; prove does not): the first is refused by DP002,
    the second loads. In-process, and in worker processes (a run made parallel)."""
    from abicheck import runner
    from abicheck.targets import load_target

    monkeypatch.setattr(runner, "PARALLEL_THRESHOLD", 2)
    consumer = sample("modules", "dep_consumer.ko")
    provider = sample("modules", "dep_provider.ko")
    out = runner.run_checks(
        [consumer, provider, consumer], [load_target(K47)], runner.RunOptions(jobs=jobs)
    )
    assert [r.verdict.value for r in out.results] == ["refused", "loads-tainted", "loads-tainted"]
    rules = [[f.rule for f in r.findings if f.severity.value == "error"] for r in out.results]
    assert rules == [["DP002", "DP002"], [], []]


def test_consumer_alone_has_unknown_symbols():
    r = check_json([sample("modules", "dep_consumer.ko")], [K47])["results"][0]
    assert [f["evidence"]["symbol"] for f in r["findings"] if f["rule"] == "SY001"] == [
        "abicheck_provider_value",
        "abicheck_provider_ns_value",
    ]


def test_in_tree_samples_load_cleanly_on_their_own_kernel():
    doc = check_json([sample("intree", "6.1.0-47-amd64")], [K47])
    verdicts = {r["module"].rsplit("/", 1)[-1]: r["verdict"] for r in doc["results"]}
    assert verdicts == {
        "crc16.ko": "loads",
        "nhc_dest.ko": "loads",
        "rtllib_crypt_wep.ko": "loads-tainted",
        "ums-alauda.ko": "loads",
        "usb-common.ko": "loads",
    }
    for r in doc["results"]:
        assert not [f for f in r["findings"] if f["severity"] == "error"], r["module"]
    staging = next(r for r in doc["results"] if r["module"].endswith("rtllib_crypt_wep.ko"))
    assert [t["letter"] for t in staging["taints"]] == ["C"]


def test_in_tree_612_compressed_samples_load():
    doc = check_json([sample("intree", "6.12.107+deb12-amd64")], [K612])
    assert [r["verdict"] for r in doc["results"]] == ["loads", "loads"]


def test_signed_in_tree_module_reports_signer():
    doc = check_json([sample("intree", "6.1.0-47-amd64", "crc16.ko")], [K47])
    sg = finding(doc["results"][0], "SG003")
    assert sg["evidence"]["signer"] == "Build time autogenerated kernel key"
    assert sg["evidence"]["hash_algo"] == "sha256"
    assert sg["severity"] == "info"


def test_one_module_several_kernels_in_one_run():
    doc = check_json([sample("modules", "hello.ko")], [K47, K56, K47RT, K612])
    assert [t["release"] for t in doc["targets"]] == [
        "6.1.0-47-amd64",
        "6.1.0-56-amd64",
        "6.1.0-47-rt-amd64",
        "6.12.107+deb12-amd64",
    ]
    assert [r["verdict"] for r in doc["results"]] == [
        "loads-tainted",
        "refused",
        "refused",
        "refused",
    ]
    assert len({t["id"] for t in doc["targets"]}) == 4
