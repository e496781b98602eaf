"""Config drift without Debian data: the safe shell, the IKCONFIG reader, sources,
classification and the CLI's contract (exit codes, one-line errors)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tomllib

import pytest
from conftest import REPO, run_cli, sample_kernel

from abicheck.kconfig import classify, table
from abicheck.kconfig.kbuild_scripts import run_script
from abicheck.kconfig.model import Change, Impact
from abicheck.kconfig.shell import SafeShell, Unevaluable
from abicheck.kconfig.toolchain import Toolchain
from abicheck.readers.ikconfig import NoEmbeddedConfig, config_from_bytes, embed
from abicheck.readers.module_h import guarded_members
from abicheck.targets.kernel_config import ConfigError, load_kernel_config


def shell(tmp_path, path=None) -> SafeShell:
    toolchain = Toolchain({"CC": "gcc", "LD": "ld"}, path or os.environ.get("PATH", ""))
    env = {"CC": "gcc", "LD": "ld", "PATH": toolchain.path}
    return SafeShell(str(tmp_path), env, toolchain.policy(env, str(tmp_path)), run_script)


def out(sh: SafeShell, command: str) -> str:
    return sh.run(command).stdout.decode()


# -- the safe shell -------------------------------------------------------------------------


def test_if_success_wrapper_and_builtins(tmp_path):
    sh = shell(tmp_path)
    assert out(sh, '{ test "GCC" = GCC; } >/dev/null 2>&1 && echo "y" || echo "n"') == "y\n"
    assert out(sh, '{ test -z "x"; } >/dev/null 2>&1 && echo "y" || echo "n"') == "n\n"
    assert out(sh, "set -- GCC 120200 && echo $2") == "120200\n"
    assert out(sh, "printf 'a\\nb\\n' | head -n 1") == "a\n"
    # an escaped dollar inside double quotes is literal (as-instr's `\$0x10`)
    assert out(sh, 'printf "%b\\n" "x \\$0x10"') == "x $0x10\n"


def test_group_redirection_hides_output(tmp_path):
    sh = shell(tmp_path)
    assert out(sh, '{ echo noise; } >/dev/null 2>&1 && echo "y" || echo "n"') == "y\n"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_cc_option_runs_the_compiler_without_a_shell(tmp_path):
    sh = shell(tmp_path)
    ok = 'trap "rm -rf .tmp_$$" EXIT; mkdir .tmp_$$; gcc -Werror -c -x c /dev/null -o .tmp_$$/tmp.o'
    assert out(sh, f"{{ {ok}; }} >/dev/null 2>&1 && echo y || echo n") == "y\n"
    bad = ok.replace("-Werror", "-Werror -fno-such-flag-abicheck")
    assert out(sh, f"{{ {bad}; }} >/dev/null 2>&1 && echo y || echo n") == "n\n"
    assert any(r.startswith("gcc -Werror") for r in sh.ran)


@pytest.mark.parametrize(
    "command",
    ["echo $(id)", "echo `id`", "gcc -c x.c > /etc/passwd", "cat /etc/passwd"],
)
def test_shell_forms_outside_the_subset_are_not_evaluated(tmp_path, command):
    sh = shell(tmp_path)
    with pytest.raises(Unevaluable):
        sh.run(command)


def test_other_programs_fail_as_if_they_could_not_run(tmp_path):
    sh = shell(tmp_path)
    res = sh.run("{ python3 -c 'import os'; } >/dev/null 2>&1 && echo y || echo n")
    assert res.stdout == b"n\n"
    assert sh.refused == [
        "python3: not a compiler, linker or pahole of abicheck's toolchain settings"
    ]


def test_tree_scripts_run_as_python(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "pahole-version.sh").write_text("#!/bin/sh\nexit 99\n")
    os.chmod(scripts / "pahole-version.sh", 0o755)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    sh = shell(tmp_path, path=str(empty))
    # pahole not on the PATH: 0, as scripts/pahole-version.sh prints
    assert out(sh, f"{tmp_path}/scripts/pahole-version.sh pahole") == "0\n"
    assert sh.missing == ["pahole"]
    assert any("not a version abicheck" in n for n in sh.notes)
    assert sh.run(f"{tmp_path}/scripts/unknown-helper.sh gcc").status == 126
    assert sh.refused == [
        "the tree's script scripts/unknown-helper.sh (abicheck has no safe version of it)"
    ]


def test_a_non_executable_script_fails_as_in_a_shell(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "cc-can-link.sh").write_text("#!/bin/sh\n")
    sh = shell(tmp_path)
    assert sh.run(f"{tmp_path}/scripts/cc-can-link.sh gcc").status == 126


# -- IKCONFIG ----------------------------------------------------------------------------------

CONFIG = "CONFIG_SMP=y\n# CONFIG_PREEMPT_RT is not set\nCONFIG_MODULES=y\n"


def test_ikconfig_block_in_any_bytes():
    # what kernel/configs.c embeds: IKCFG_ST, gzip(.config), IKCFG_ED
    blob = b"\x7fELF" + b"\0" * 100 + embed(CONFIG) + b"\0" * 50
    assert config_from_bytes(blob, "x") == CONFIG


def test_no_ikconfig_is_one_clear_error():
    with pytest.raises(NoEmbeddedConfig, match="CONFIG_IKCONFIG"):
        config_from_bytes(b"\x7fELF" + b"\0" * 4096, "vmlinux")


# -- sources -----------------------------------------------------------------------------------


def test_sources_keep_values_as_written(tmp_path):
    p = tmp_path / "config"
    p.write_text("# header\n" + CONFIG + 'CONFIG_LOCALVERSION="-x"\n')
    s = load_kernel_config(str(p))
    assert s.kind == "file"
    assert s.get("SMP") == "y"
    assert s.get("PREEMPT_RT") == "n"  # not set: recorded as n
    assert s.get("PREEMPT_BUILD") is None  # absent: a different fact
    assert s.get("LOCALVERSION") == '"-x"'
    gz = tmp_path / "config.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert load_kernel_config(str(gz)).values == s.values
    img = tmp_path / "image"
    img.write_bytes(b"\x7fELF" + b"\0" * 64 + embed(CONFIG))
    assert load_kernel_config(str(img)).kind == "image"


def test_profile_and_headers_directory(tmp_path):
    s = load_kernel_config(sample_kernel("6.1.0-47-amd64"))
    assert s.kind == "profile" and s.release == "6.1.0-47-amd64"
    assert s.get("MODVERSIONS") == "y"
    headers = tmp_path / "headers"
    (headers / "include" / "linux").mkdir(parents=True)
    (headers / ".config").write_text(CONFIG)
    (headers / "include" / "linux" / "module.h").write_text(MODULE_H)
    h = load_kernel_config(str(headers))
    assert h.kind == "headers" and h.module_h_path.endswith("module.h")
    assert {g.name for g in h.module_h} >= {"btf_data", "exit"}


def test_unreadable_sources(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_kernel_config(str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("hello\n")
    with pytest.raises(ConfigError, match="not a kernel config"):
        load_kernel_config(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=r"no \.config"):
        load_kernel_config(str(tmp_path))


# -- classification ------------------------------------------------------------------------------

MODULE_H = """
struct module {
	int state;
#ifdef CONFIG_DEBUG_INFO_BTF_MODULES
	unsigned int btf_data_size;
	void *btf_data;
#endif
	void (*exit)(void);
};
"""
PINNED = MODULE_H.replace("#ifdef CONFIG_DEBUG_INFO_BTF_MODULES", "#if 1")


def _classify(option, old, new, module_h=None, series=()):
    guards = guarded_members(module_h) if module_h else ()
    change = Change(option, old, new)
    a = {option: old} if old is not None else {}
    b = {option: new} if new is not None else {}
    return classify.classify(change, a, b, guards, "module.h" if module_h else None, series)


def test_preempt_model_changes_the_vermagic():
    f = _classify("CONFIG_PREEMPT_RT", None, "y")
    assert f.impact is Impact.VERMAGIC
    assert "preempt_rt" in f.message and "include/linux/vermagic.h" in f.message


def test_struct_module_from_the_trees_own_module_h():
    guarded = _classify("CONFIG_DEBUG_INFO_BTF_MODULES", "y", "n", MODULE_H)
    assert guarded.impact is Impact.STRUCT_MODULE
    assert "removes btf_data_size, btf_data" in guarded.message
    # Debian 6.1 pins the members: the same change is harmless for struct module
    pinned = _classify("CONFIG_DEBUG_INFO_BTF_MODULES", "y", "n", PINNED)
    assert pinned.impact is not Impact.STRUCT_MODULE
    assert "harmless for struct module" in pinned.message


def test_lock_debugging_and_driver_options():
    assert _classify("CONFIG_DEBUG_LOCK_ALLOC", "n", "y").impact is Impact.STRUCT_LAYOUT
    assert _classify("CONFIG_MODULE_SIG_FORCE", None, "y").impact is Impact.LOADER
    # modversions: a vermagic word first, the CRC checks too
    mv = _classify("CONFIG_MODVERSIONS", "y", None)
    assert mv.impact is Impact.VERMAGIC
    assert {e.impact for e in mv.effects} >= {Impact.VERMAGIC, Impact.LOADER}
    assert _classify("CONFIG_PAHOLE_VERSION", "124", "0").impact is Impact.TOOLCHAIN
    assert _classify("CONFIG_CC_HAS_IBT", "y", "n").impact is Impact.TOOLCHAIN
    assert _classify("CONFIG_USB_SERIAL_FTDI_SIO", "m", None).impact is Impact.NONE
    # y → m leaves a bool-like option on: no struct moves
    assert _classify("CONFIG_DEBUG_LOCK_ALLOC", "y", "m").impact is Impact.NONE


def test_every_table_entry_cites_where_it_acts():
    sizes = table.size()
    assert sizes["struct-layout"] > 100 and sizes["codegen"] > 100
    for name in table.TABLES.values():
        with open(os.path.join(table.config_dir(), name), "rb") as f:
            rows = tomllib.load(f)["option"]
        for row in rows:
            assert row.get("where"), (name, row)
            assert row.get("option", row.get("prefix", "")).startswith("CONFIG_")
    cats = list(table.categories())
    assert cats == sorted(cats, key=lambda i: i.rank)


def test_rules_config_ships_with_the_rules():
    assert os.path.isdir(os.path.join(REPO, "rules", "config"))
    assert table.config_dir().endswith(os.path.join("rules", "config"))


# -- CLI contract ---------------------------------------------------------------------------------


def test_diff_exit_codes_and_json(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text(CONFIG + "CONFIG_PREEMPT_BUILD=y\nCONFIG_USB=m\n")
    b.write_text(CONFIG + "CONFIG_PREEMPT_BUILD=y\n")
    res = run_cli(["config", "diff", str(a), str(b), "--format", "json"])
    assert res.exit_code == 0, res.stderr  # a driver only: nothing for modules
    d = res.json()
    assert d["summary"]["changed"] == 1 and d["findings"][0]["impact"] == "none"
    assert d["findings"][0]["b_state"] == "absent"
    b.write_text(CONFIG.replace("# CONFIG_PREEMPT_RT is not set", "CONFIG_PREEMPT_RT=y"))
    res = run_cli(["config", "diff", str(a), str(b)])
    assert res.exit_code == 1
    assert "CONFIG_PREEMPT_RT" in res.stdout and "[vermagic]" in res.stdout


def test_errors_are_one_line(tmp_path):
    res = run_cli(["config", "diff", str(tmp_path / "nope"), "running"])
    assert res.exit_code == 2
    assert res.stderr.startswith("abicheck: error: ") and res.stderr.count("\n") == 1
    res = run_cli(["config", "predict", str(tmp_path)])
    assert res.exit_code == 2 and "not a kernel source tree" in res.stderr
    res = run_cli(["config", "explain", "SMP", "--tree", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.startswith("abicheck: error: ")


def test_json_is_json(tmp_path):
    a = tmp_path / "a"
    a.write_text(CONFIG)
    res = run_cli(["config", "diff", str(a), str(a), "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["summary"]["changed"] == 0


# -- the kconfiglib adapter on a small tree ------------------------------------------------------

KCONFIG = """
mainmenu "test"

config MODULES
	bool "modules"
	modules
	default y

config PAHOLE_VERSION
	int
	default $(shell,$(srctree)/scripts/pahole-version.sh $(PAHOLE))

config PAHOLE_HAS_SPLIT_BTF
	def_bool PAHOLE_VERSION >= 119

config DEBUG_INFO_BTF_MODULES
	bool "BTF for modules"
	depends on MODULES && PAHOLE_HAS_SPLIT_BTF
	default y

config OLD_NAME
	bool
	transitional

config NEW_NAME
	bool "new name"
	default OLD_NAME
"""


def small_tree(tmp_path) -> str:
    tree = tmp_path / "linux"
    (tree / "scripts" / "kconfig").mkdir(parents=True)
    (tree / "Kconfig").write_text(KCONFIG)
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 99\nSUBLEVEL = 0\nEXTRAVERSION =\n")
    script = tree / "scripts" / "pahole-version.sh"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o755)
    return str(tree)


def test_adapter_new_syntax_and_a_missing_pahole(tmp_path):
    from abicheck.kconfig.explain import chain, explain
    from abicheck.kconfig.kconfig_tree import KconfigTree
    from abicheck.kconfig.predict import predict
    from abicheck.kconfig.toolchain import Toolchain

    tree = small_tree(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    kt = KconfigTree(tree, Toolchain(path=str(empty)))
    config = tmp_path / "config"
    config.write_text(
        "CONFIG_MODULES=y\nCONFIG_PAHOLE_VERSION=124\nCONFIG_PAHOLE_HAS_SPLIT_BTF=y\n"
        "CONFIG_DEBUG_INFO_BTF_MODULES=y\nCONFIG_OLD_NAME=y\n"
    )
    assert kt.load(config.read_text()) == []
    values = kt.values()
    assert values["CONFIG_PAHOLE_VERSION"] == "0"
    assert "CONFIG_DEBUG_INFO_BTF_MODULES" not in values
    # `transitional`: read from the old config, never written back
    assert values["CONFIG_NEW_NAME"] == "y" and "CONFIG_OLD_NAME" not in values
    text = chain(explain(kt, "DEBUG_INFO_BTF_MODULES"))
    assert "PAHOLE_HAS_SPLIT_BTF = n" in text and "pahole not found on the PATH" in text
    p = predict(tree, str(config), Toolchain(path=str(empty)), tree=kt)
    f = {x.option: x for x in p.findings}
    assert f["CONFIG_DEBUG_INFO_BTF_MODULES"].extra["missing"] == ["pahole"]
    assert "dwarves" in f["CONFIG_DEBUG_INFO_BTF_MODULES"].fix
    assert "pahole" in p.missing_tools


def test_one_loader_for_diff_build_tree_and_running(tmp_path):
    """config diff, --build-tree and the running target read a config the same way."""
    from abicheck.errors import TargetError
    from abicheck.targets.buildtree import build_tree_from
    from abicheck.targets.kernel_config import running_config

    headers = tmp_path / "headers"
    (headers / "include" / "linux").mkdir(parents=True)
    (headers / ".config").write_text(CONFIG)
    (headers / "include" / "linux" / "module.h").write_text(MODULE_H)
    s = load_kernel_config(str(headers))
    tree = build_tree_from(str(headers))
    assert dict(tree.config) == dict(s.values) and tree.module_h == s.module_h
    # a config.gz that inflates past the bound is refused, never inflated whole
    bomb = tmp_path / "config.gz"
    bomb.write_bytes(gzip.compress(b"CONFIG_X=y\n" + b"#" * (65 << 20), compresslevel=1))
    for load in (load_kernel_config, build_tree_from):
        with pytest.raises(TargetError, match="inflates past"):
            load(str(bomb))
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "config.gz").write_bytes(gzip.compress(CONFIG.encode()))
    label, text = running_config(str(root), "6.1.0-test")
    assert label.endswith("proc/config.gz") and text == CONFIG
