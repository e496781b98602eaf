"""Say less, say it once (issue 12): LY003 speaks of the structs the module's code uses,
and once the module is known to be built against another kernel (MV004, VM001, LY001),
the CRC and layout details that follow from it are one finding each, not dozens."""

from __future__ import annotations

import os
import struct

import pytest
from conftest import CACHE, built, check_json, kernel, sample, sample_kernel

from abicheck.readers.module import read_module
from abicheck.targets import load_target

K47 = sample_kernel("6.1.0-47-amd64")
K612 = sample_kernel("6.12.107+deb12-amd64")


def result(module: str, *kernel_args: str) -> dict:
    (r,) = check_json([module], list(kernel_args))["results"]
    return r


def of(r: dict, rule: str) -> list[dict]:
    return [f for f in r["findings"] if f["rule"] == rule]


@pytest.mark.debian
def test_hello_on_another_kernel_reports_no_struct_it_never_touches(testdata):
    """hello.c calls pr_info() and nothing else; its DWARF still holds srcu_struct,
    mm_struct, task_struct... through __this_module's pointers (18 LY003 before)."""
    r = result(built(testdata, "6.1-a", "hello.ko"), kernel(testdata, "6.12")["headers"])
    assert {"MV004", "LY001"} <= {f["rule"] for f in r["findings"]}
    assert of(r, "LY003") == []
    assert of(r, "LY004") == []  # nothing left uncompared either


@pytest.mark.debian
def test_embedded_locks_are_one_finding_on_another_kernel(testdata):
    """drift_struct embeds a spinlock_t, a wait_queue_head_t and a struct mutex, built
    with CONFIG_DEBUG_SPINLOCK: on 6.12 (MV004, LY001) the four drifted structs it lays
    out are one LY003, and only those four."""
    module = os.path.join(CACHE, "drift", "6.1-a-debug-spinlock", "drift_struct.ko")
    if not os.path.exists(module):
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    r = result(module, kernel(testdata, "6.12")["headers"])
    (ly,) = of(r, "LY003")
    ev = ly["evidence"]
    assert ev["count"] == 4 and ev["because"] == "MV004 and LY001"
    assert [s["struct"] for s in ev["structs"]] == [
        "mutex",
        "raw_spinlock",
        "spinlock",
        "wait_queue_head",
    ]
    assert ev["structs"][0] == {
        "struct": "mutex",
        "difference": "size 56 in the module, 32 in the kernel",
        "module_size": 56,
        "kernel_size": 32,
    }
    assert ly["message"].startswith(
        "4 structs the module uses have another layout in the kernel "
        "(mutex, raw_spinlock, spinlock, wait_queue_head)"
    )


@pytest.mark.debian
def test_drift_on_its_own_kernel_keeps_one_finding_per_struct(testdata):
    """Same vermagic, same module_layout: the drifted structs are the whole story."""
    module = os.path.join(CACHE, "drift", "6.1-a-debug-mutexes", "drift_struct.ko")
    if not os.path.exists(module):
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    r = result(module, kernel(testdata, "6.1-a")["headers"])
    structs = {f["evidence"]["struct"]: f["evidence"] for f in of(r, "LY003")}
    # struct mutex grows by `magic`; nothing it merely points to is reported
    assert list(structs) == ["mutex"]
    assert (structs["mutex"]["module_size"], structs["mutex"]["kernel_size"]) == (40, 32)


@pytest.mark.debian
def test_crc_mismatches_after_module_layout_are_one_finding(testdata):
    """params_mod (6.1.0-47) on 6.12: MV004, and 8 of its CRCs differ."""
    module = built(testdata, "6.1-a", "params_mod.ko")
    r = result(module, K612)
    (mv,) = of(r, "MV001")
    target = load_target(K612)
    expected = [
        v.name
        for v in read_module(module).versions
        if v.name != "module_layout"
        and v.name in target.exports
        and target.exports[v.name].crc != v.crc
    ]
    ev = mv["evidence"]
    assert ev["count"] == len(expected) == 8
    assert ev["because"] == "MV004"
    assert sorted(ev["symbols"]) == sorted(expected)
    assert [m["symbol"] for m in ev["mismatches"]] == ev["symbols"]
    printk = next(m for m in ev["mismatches"] if m["symbol"] == "_printk")
    assert printk == {
        "symbol": "_printk",
        "module_crc": "0x92997ed8",
        "kernel_crc": "0x122c3a7e",
        "owner": "vmlinux",
    }
    assert mv["message"].startswith(
        "8 symbols' CRCs differ from the kernel's (param_ops_ushort, param_array_ops, "
        "_printk, param_ops_charp, param_set_int and 3 more)"
    )
    assert mv["kernel_says"] is None  # the kernel stops at module_layout first


def test_one_crc_mismatch_on_the_modules_own_kernel_stays_per_symbol(tmp_path):
    """hello.ko of 6.1.0-47 with _printk's CRC in __versions changed: module_layout and
    the vermagic agree, so the mismatch is the real, targeted problem."""
    with open(sample("modules", "hello.ko"), "rb") as f:
        data = bytearray(f.read())
    # a __versions record: the CRC as a 64-bit unsigned long, then the name
    record = struct.pack("<Q", 0x92997ED8) + b"_printk\0"
    at = data.find(record)
    assert at > 0 and data.find(record, at + 1) < 0
    data[at : at + 8] = struct.pack("<Q", 0x12345678)
    out = tmp_path / "hello.ko"
    out.write_bytes(bytes(data))
    r = result(str(out), K47)
    assert "MV004" not in [f["rule"] for f in r["findings"]]
    (mv,) = of(r, "MV001")
    assert mv["evidence"] == {
        "symbol": "_printk",
        "module_crc": "0x12345678",
        "kernel_crc": "0x92997ed8",
        "owner": "vmlinux",
    }


@pytest.mark.debian
def test_a_member_in_the_module_padding_is_a_warning_not_unsafe(testdata):
    """MUTEX_SPIN_ON_OWNER off in the module's headers: struct mutex loses osq, which sat
    in the padding after wait_lock. Nothing the module uses moved and the real 6.1.0-47
    loads and runs it (tests/test_qemu.py), so LY003 warns instead of calling it unsafe."""
    module = os.path.join(CACHE, "drift", "6.1-a-no-mutex-spin-on-owner", "drift_struct.ko")
    if not os.path.exists(module):
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    r = result(module, kernel(testdata, "6.1-a")["headers"])
    (ly,) = of(r, "LY003")
    assert (ly["evidence"]["struct"], ly["effect"], ly["severity"]) == ("mutex", "warn", "warning")
    assert ly["evidence"]["members"] == "osq at 0xc (4 bytes)"
    assert ly["message"].startswith(
        "struct mutex: the kernel has osq at 0xc (4 bytes) where the module's layout has padding"
    )
    assert r["verdict"] == "loads-tainted"


@pytest.mark.debian
def test_a_shifted_struct_names_the_first_member_that_moved(testdata):
    """SCHED_INFO off: task_struct shrinks by 64 bytes; the message names the first member
    that moved and counts the rest, not the size alone (pid is among them)."""
    module = os.path.join(CACHE, "drift", "6.1-a-no-sched-info", "task_pid.ko")
    if not os.path.exists(module):
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    r = result(module, kernel(testdata, "6.1-a")["headers"])
    structs = {f["evidence"]["struct"]: f for f in of(r, "LY003")}
    task = structs["task_struct"]
    assert task["effect"] == "unsafe" and r["verdict"] == "loads-unsafe"
    assert task["evidence"]["difference"].startswith(
        "size 9728 in the module, 9792 in the kernel; "
        "sched_info at 0x86c in the module, 0x870 in the kernel; and "
    )
    assert "pid at 0x950 in the module, 0x970 in the kernel" in task["evidence"]["differences"]
