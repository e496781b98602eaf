"""Without --trust-tree, a hostile Kconfig tree runs nothing but abicheck's own compiler
and linker with argument lists the allow-list accepts (abicheck.kconfig.launch).

The trees here are synthetic (the fuzzing campaign's reproducers, one Kconfig symbol
each); every process start in the test process is recorded at subprocess.Popen, so a
start that bypassed the gate would show up too."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from abicheck.kconfig import launch
from abicheck.kconfig.kconfig_tree import KconfigTree
from abicheck.kconfig.toolchain import Toolchain

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("ld") is None, reason="needs gcc and ld"
)

CONFIG = "CONFIG_MODULES=y\n"


@pytest.fixture
def starts(monkeypatch) -> list[list[str]]:
    """Every process this test starts (its argument vector), by any route."""
    started: list[list[str]] = []
    original = subprocess.Popen.__init__

    def recording(self, args, *a, **kw):
        started.append([args] if isinstance(args, str) else [str(x) for x in args])
        return original(self, args, *a, **kw)

    def forbidden(*a, **kw):
        raise AssertionError(f"a process started outside subprocess: {a}")

    monkeypatch.setattr(subprocess.Popen, "__init__", recording)
    for name in ("system", "popen", "posix_spawn", "posix_spawnp", "execv", "execvp"):
        monkeypatch.setattr(os, name, forbidden)
    return started


class Victims:
    """Files a hostile probe would create or rewrite, and their state before."""

    def __init__(self, root: Path) -> None:
        self.marker = root / "synthetic-marker"
        self.victim = root / "synthetic-victim.o"
        self.victim.write_bytes(b"\x7fELF victim bytes that strip or objcopy would rewrite")
        os.utime(self.victim, (1_000_000_000, 1_000_000_000))
        self.before = (self.victim.read_bytes(), self.victim.stat().st_mtime_ns)

    def assert_untouched(self) -> None:
        assert not self.marker.exists()
        assert (self.victim.read_bytes(), self.victim.stat().st_mtime_ns) == self.before


# (symbol, the Kconfig expression): each a reproducer of the fuzzing campaign or one of
# the flags the rule names
def hostile(v: Victims, evil_bin: Path) -> dict[str, str]:
    m, o = v.marker, v.victim
    return {
        "PY": f"$(success,python3 -c \"open('{m}','w')\")",
        "PERL": f"$(success,perl -e \"open(F,'>{m}')\")",
        "GCC_O": f"$(success,$(CC) -c -x c /dev/null -o {o})",
        "GCC_O_REL": "$(success,$(CC) -c -x c /dev/null -o ../../synthetic-out.o)",
        "OBJCOPY": f"$(success,$(OBJCOPY) /etc/hostname {o})",
        "STRIP": f"$(success,$(STRIP) {o})",
        "PLUGIN": "$(cc-option,-fplugin=synthetic.so)",
        "PLUGIN_ARG": "$(cc-option,-fplugin-arg-synthetic-x=1)",
        "ATFILE": f"$(cc-option,@{m})",
        "SPECS": f"$(cc-option,-specs={evil_bin}/specs)",
        "BDIR": f"$(cc-option,-B{evil_bin})",
        "BDIR_SPLIT": f"$(cc-option,-B {evil_bin})",
        "WL": f"$(cc-option,-Wl$(comma)-T$(comma){m})",
        "WA": f"$(cc-option,-Wa$(comma)-o$(comma){m})",
        "WRAPPER": f"$(cc-option,-wrapper {evil_bin}/wrap)",
        "PROFILE": f"$(cc-option,-fprofile-generate={m})",
        "DUMP": "$(cc-option,-fdump-tree-all)",
        "SAVE_TEMPS": "$(cc-option,-save-temps)",
        "SWITCHES": "$(cc-option,-frecord-gcc-switches)",
        "LTO": "$(cc-option,-flto=jobserver)",
        "USE_LD": f"$(cc-option,-fuse-ld={evil_bin}/ld)",
        "PARAM_PATH": f"$(cc-option,--param {m}=1)",
        "INCLUDE": f"$(cc-option,-include {m})",
        "ENV": f"$(success,COMPILER_PATH={evil_bin} $(CC) -c -x c /dev/null -o /dev/null)",
        "PATH_ENV": f"$(success,PATH={evil_bin} $(CC) -c -x c /dev/null -o /dev/null)",
        "LD_PLUGIN": f"$(ld-option,--plugin {evil_bin}/p.so)",
        "LD_SCRIPT": f"$(ld-option,-T {m})",
        "TREE_PROGRAM": "$(success,$(srctree)/evil-bin/gcc -c -x c /dev/null)",
        "EVIL_ON_PATH": "$(success,synthetic-evil)",
        "PAHOLE_ARGS": f"$(success,$(PAHOLE) -J {o})",
        "RUSTC_OPTION": "$(success,$(RUSTC) -Zunstable-options --crate-type=rlib /dev/null)",
    }


def make_tree(root: Path, v: Victims, extra: str = "") -> Path:
    tree = root / "synthetic-hostile-tree"
    (tree / "scripts" / "kconfig").mkdir(parents=True)
    evil_bin = tree / "evil-bin"
    evil_bin.mkdir()
    for name in ("gcc", "as", "cc1", "ld", "wrap", "synthetic-evil"):
        p = evil_bin / name
        p.write_text(f"#!/bin/sh\ntouch {v.marker}\n")
        p.chmod(0o755)
    (evil_bin / "specs").write_text(f"*cc1:\n+ %:touch({v.marker})\n")
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    (tree / "scripts" / "Kconfig.include").write_text(KCONFIG_INCLUDE)
    lines = ['source "scripts/Kconfig.include"', "config MODULES", "\tdef_bool y"]
    for sym, expr in hostile(v, evil_bin).items():
        lines += [f"config {sym}", f"\tdef_bool {expr}"]
    (tree / "Kconfig").write_text("\n".join(lines) + "\n" + extra)
    (tree / ".config").write_text(CONFIG)
    return tree


# The kernel's own macros (scripts/Kconfig.include of 6.12), as a tree would carry them
KCONFIG_INCLUDE = """\
comma       := ,
if-success = $(shell,{ $(1); } >/dev/null 2>&1 && echo "$(2)" || echo "$(3)")
success = $(if-success,$(1),y,n)
cc-option = $(success,trap "rm -rf .tmp_$$" EXIT; mkdir .tmp_$$; \
$(CC) -Werror $(CLANG_FLAGS) $(1) -c -x c /dev/null -o .tmp_$$/tmp.o)
ld-option = $(success,$(LD) -v $(1))
as-instr = $(success,printf "%b\\n" "$(1)" | $(CC) $(CLANG_FLAGS) $(2) \
-Wa$(comma)--fatal-warnings -c -x assembler-with-cpp -o /dev/null -)
"""


def toolchain(tree: Path) -> Toolchain:
    # the tree's own evil-bin on the PATH too: a name is never enough to run a program
    return Toolchain({"CC": "gcc", "LD": "ld"}, f"{os.environ['PATH']}:{tree}/evil-bin")


def allowed_start(argv: list[str]) -> bool:
    """What the rule lets start: gcc/ld/pahole/rustc of the PATH, nothing of the tree."""
    return os.path.basename(argv[0]) in {"gcc", "ld", "pahole", "rustc"} and not any(
        "synthetic" in a or "evil-bin" in a for a in argv
    )


def test_hostile_tree_runs_nothing_but_the_toolchain(tmp_path, starts):
    v = Victims(tmp_path)
    tree = make_tree(tmp_path, v)
    kt = KconfigTree(str(tree), toolchain(tree))
    v.assert_untouched()
    assert not (tmp_path / "synthetic-out.o").exists()
    assert [a for a in starts if not allowed_start(a)] == []
    kt.load(CONFIG)
    values = kt.values()
    for sym in hostile(v, tree / "evil-bin"):
        if sym == "EVIL_ON_PATH":
            continue
        assert values.get(f"CONFIG_{sym}") is None, sym  # the test failed: n, not written
    refused = {p.where.rpartition(":")[2]: p.problem for p in kt.unevaluated()}
    problems = " | ".join(refused.values())
    words = ["python3", "objcopy", "strip", "-fplugin=synthetic.so", "-B", "'@", "-specs="]
    words += ["-Wl,-T", "-Wa,-o", "-save-temps", "--plugin", "COMPILER_PATH", "evil-bin/gcc"]
    words += ["perl"] if shutil.which("perl") else []
    for word in words:
        assert word in problems, word
    assert all("not run without --trust-tree" in p for p in refused.values())


def test_kconfig_variable_cannot_rename_the_compiler(tmp_path, starts):
    v = Victims(tmp_path)
    tree = make_tree(tmp_path, v)
    with (tree / "Kconfig").open("a") as f:
        f.write(f"CC := python3 -c \"open('{v.marker}','w')\" \n")
        f.write("config RENAMED\n\tdef_bool $(success,$(CC) -c -x c /dev/null -o /dev/null)\n")
    kt = KconfigTree(str(tree), toolchain(tree))
    v.assert_untouched()
    assert [a for a in starts if not allowed_start(a)] == []
    (probe,) = {p.problem for p in kt.unevaluated() if p.command.startswith('{ python3 -c "open')}
    assert probe.startswith("not run without --trust-tree: python3:")


def test_legitimate_feature_tests_still_evaluate(tmp_path, starts):
    v = Victims(tmp_path)
    tree = make_tree(tmp_path, v)
    with (tree / "Kconfig").open("a") as f:
        f.write(
            "config OK_CC\n\tdef_bool $(cc-option,-fno-PIE)\n"
            "config BAD_CC\n\tdef_bool $(cc-option,-fno-such-flag-synthetic)\n"
            "config OK_LD\n\tdef_bool $(ld-option,--gc-sections)\n"
            "config OK_AS\n\tdef_bool $(as-instr,nop)\n"
            "config BAD_AS\n\tdef_bool $(as-instr,synthetic_no_such_insn)\n"
            "config OK_SNIPPET\n\tdef_bool "
            "$(success,echo 'int x;' | $(CC) -x c - -c -o /dev/null)\n"
            "config OK_TSAN\n\tdef_bool $(cc-option,-fsanitize=thread --param "
            "tsan-distinguish-volatile=1)\n"
        )
    kt = KconfigTree(str(tree), toolchain(tree))
    kt.load(CONFIG)
    values = kt.values()
    assert values.get("CONFIG_OK_CC") == "y"
    assert values.get("CONFIG_BAD_CC") is None
    assert values.get("CONFIG_OK_LD") == "y"
    assert values.get("CONFIG_OK_AS") == "y"
    assert values.get("CONFIG_BAD_AS") is None
    assert values.get("CONFIG_OK_SNIPPET") == "y"
    assert values.get("CONFIG_OK_TSAN") == "y"
    ok = [p for p in kt.record.probes if "-fno-PIE" in p.command]
    assert ok and ok[0].evaluated
    assert any(a[1:3] == ["-Werror", "-fno-PIE"] for a in starts)
    v.assert_untouched()


@pytest.mark.parametrize(
    "args",
    [
        ["-Werror", "-fplugin=x.so", "-c", "-x", "c", "/dev/null"],
        ["@/tmp/rsp", "-c"],
        ["-specs=x", "-c"],
        ["-B/tmp", "-c"],
        ["-B", "/tmp", "-c"],
        ["-Wl,-T,/tmp/x", "-c"],
        ["-Wa,-o,/tmp/x", "-c"],
        ["-c", "-x", "c", "/dev/null", "-o", "/tmp/victim.o"],
        ["-c", "-x", "c", "/dev/null", "-o", "../victim.o"],
        ["-c", "/etc/passwd"],
        ["-fprofile-use=/tmp/p", "-c"],
        ["-fdump-rtl-all", "-c"],
        ["-save-temps", "-c"],
        ["-frecord-gcc-switches", "-c"],
        ["-flto=jobserver", "-c"],
        ["-fuse-ld=lld", "-c"],
        ["--param", "x=/tmp", "-c"],
        ["-mllvm", "-info-output-file=x", "-c"],
        ["-include", "/etc/passwd", "-c"],
        ["-x", "python", "-"],
        ["-wrapper", "gdb,--args", "-c"],
    ],
)
def test_the_gate_refuses_flags_that_name_files_or_programs(tmp_path, starts, args):
    policy = Toolchain({"CC": "gcc"}).policy()
    with pytest.raises(launch.Refused):
        launch.run(policy, ["gcc", *args], cwd=str(tmp_path))
    assert starts == []


@pytest.mark.parametrize(
    "argv",
    [
        ["python3", "-c", "1"],
        ["perl", "-e", "1"],
        ["sh", "-c", "true"],
        ["objcopy", "--version"],
        ["strip", "x"],
        ["ld", "-v", "--plugin", "/tmp/p.so"],
        ["ld", "-v", "-T", "/tmp/s"],
        ["pahole", "-J", "/tmp/x"],
        ["gcc-evil", "--version"],
    ],
)
def test_the_gate_refuses_other_programs(tmp_path, starts, argv):
    policy = Toolchain({"CC": "gcc", "LD": "ld"}).policy()
    with pytest.raises(launch.Refused):
        launch.run(policy, argv, cwd=str(tmp_path))
    assert starts == []


def test_a_shell_needs_trust(tmp_path, starts):
    with pytest.raises(launch.Refused):
        launch.run_shell(Toolchain().policy(), f"touch {tmp_path}/synthetic-marker")
    assert starts == [] and not (tmp_path / "synthetic-marker").exists()


def test_cli_predict_and_explain_run_nothing_from_the_tree(tmp_path, starts):
    v = Victims(tmp_path)
    tree = make_tree(tmp_path, v)
    res = run_cli(["config", "predict", str(tree), "--set", "CC=gcc", "--format", "json"])
    assert res.exit_code in (0, 1), res.stderr
    unevaluated = {u["where"].rpartition(":")[2] for u in res.json()["unevaluated"]}
    assert len(unevaluated) >= 20
    res = run_cli(["config", "explain", "STRIP", "--tree", str(tree), "--set", "CC=gcc"])
    assert res.exit_code == 0, res.stderr
    assert "not run without --trust-tree" in res.stdout
    v.assert_untouched()
    assert [a for a in starts if not allowed_start(a)] == []


def test_cli_diff_follows_a_source_link_to_a_hostile_tree_and_runs_nothing(tmp_path, starts):
    v = Victims(tmp_path)
    tree = make_tree(tmp_path, v)
    build = tmp_path / "synthetic-build"
    build.mkdir()
    (build / ".config").write_text(CONFIG + "CONFIG_PY=y\n")
    (build / "source").symlink_to(tree)
    other = tmp_path / "synthetic-other.config"
    other.write_text(CONFIG)
    res = run_cli(["config", "diff", str(build), str(other), "--format", "json"])
    assert res.exit_code in (0, 1), res.stderr
    assert res.json()["a"]["resolved_with"] == str(tree)  # the link was followed
    v.assert_untouched()
    assert [a for a in starts if not allowed_start(a)] == []


def test_help_states_the_rule():
    for command in ("diff", "explain", "predict"):
        text = run_cli(["config", command, "--help"]).stdout
        assert "Without --trust-tree" in text and "python3, perl, sh" in text
        assert "--trust-tree runs every $(shell,...) with /bin/sh" in text


def test_no_module_of_abicheck_config_but_launch_can_start_a_process():
    """The gate is the only door: nothing else imports subprocess or calls os.exec*,
    os.system, os.popen, os.spawn*, os.posix_spawn*, pty or asyncio's subprocesses."""
    config_dir = Path(REPO) / "abicheck" / "kconfig"
    starters = {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp"}
    offenders = []
    for path in sorted(config_dir.glob("*.py")):
        if path.name == "launch.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                if any(n.split(".")[0] in ("subprocess", "pty", "multiprocessing") for n in names):
                    offenders.append(f"{path.name}:{node.lineno}")
                if any(n in starters or n.startswith(("exec", "spawn")) for n in names):
                    offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Attribute) and (
                node.attr in starters
                or node.attr.startswith(("exec", "spawn"))
                or node.attr == "create_subprocess_exec"
                or node.attr == "create_subprocess_shell"
            ):
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert offenders == []
