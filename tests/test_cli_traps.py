"""Command-line traps: each answered with one line on stderr and exit 2, or with a
documented behaviour (help texts, aliases, colour conventions)."""

from __future__ import annotations

import os
import shutil
import tomllib

import pytest
from conftest import run_cli, sample, sample_kernel

from abicheck import ruledata

K47 = sample_kernel("6.1.0-47-amd64")
K56 = sample_kernel("6.1.0-56-amd64")
HELLO = sample("modules", "hello.ko")


def _one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("abicheck: error: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    ("typo", "meant"), [("chek", "check"), ("rul", "rule"), ("upgrad", "upgrade")]
)
def test_subcommand_typo_is_refused_with_a_suggestion(typo, meant, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run_cli([typo, HELLO, "--kernel", K47])
    # refused before anything runs: hello.ko is not checked behind the user's back
    _one_line_error(res, repr(typo), f"did you mean {meant!r}?")


def test_an_existing_file_named_like_a_command_is_a_module(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(HELLO, tmp_path / "chek")
    res = run_cli(["chek", "--kernel", K47])
    assert res.exit_code == 0
    assert "verdict: loads-tainted" in res.stdout


def test_a_missing_module_far_from_any_command_is_still_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run_cli(["nosuchmodule", HELLO, "--kernel", K47])
    assert res.exit_code == 2  # the unreadable input
    assert "nosuchmodule" in res.stderr
    assert "verdict: loads-tainted" in res.stdout


def test_vmlinux_before_any_kernel_is_an_error():
    res = run_cli(["check", HELLO, "--vmlinux", "/boot/vmlinuz-x", "--kernel", K47])
    _one_line_error(res, "--vmlinux", "belongs to the --kernel before it")
    res = run_cli(["check", HELLO, "--modules-dir=/lib/modules/x", "-k", K47, "-k", K56])
    _one_line_error(res, "--modules-dir")


def test_vmlinux_after_its_kernel_binds_to_it(tmp_path):
    # the second kernel gets the (missing) image: the error names it, the first is checked
    res = run_cli(["check", HELLO, "-k", K47, "-k", K56, "--vmlinux", str(tmp_path / "nope")])
    assert str(tmp_path / "nope") in res.stderr
    assert "6.1.0-47-amd64" in res.stdout


def test_check_help_says_the_binding_and_gives_examples():
    out = run_cli(["check", "--help"]).stdout
    assert "belong to the --kernel before them" in out
    assert "Examples:" in out
    for option in ("--quiet", "--severity", "--statistics", "concise", "FORCE_COLOR"):
        assert option in out


def test_upgrade_help_names_its_own_kernel_option():
    out = run_cli(["upgrade", "--help"]).stdout
    assert "--kernel" not in out
    assert "the --to kernel" in out


def test_profile_lists_save_with_a_description():
    out = run_cli(["profile", "--help"]).stdout
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("save"))
    assert len(line.split()) > 1


def test_profile_save_help_documents_every_option():
    out = run_cli(["profile", "save", "--help"]).stdout
    assert "The kernel to save" in out
    assert "--output-file" in out
    assert "--output " not in out  # the old name is a hidden alias


@pytest.mark.parametrize("flag", ["-o", "--output-file", "--output"])
def test_profile_save_output_spellings(flag, tmp_path):
    out = tmp_path / "p.json"
    res = run_cli(["profile", "save", "-k", K47, flag, str(out), "--no-btf"])
    assert res.exit_code == 0, res.stderr
    assert out.exists()


def test_profile_save_without_output_is_one_line():
    _one_line_error(run_cli(["profile", "save", "-k", K47]), "--output-file")


def test_settings_unknown_key_names_the_nearest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "abicheck.toml").write_text('fail_on = "warning"\n')
    _one_line_error(run_cli([HELLO, "-k", K47]), "'fail_on'", "did you mean 'fail-on'?")


def test_pyproject_unknown_key_names_the_nearest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.abicheck]\nselct = ["ALL"]\n')
    _one_line_error(run_cli([HELLO, "-k", K47]), "did you mean 'select'?")


def test_config_file_of_another_name_is_read_like_abicheck_toml(tmp_path):
    conf = tmp_path / "ci.toml"
    conf.write_text('ignor = ["TN001"]\n')
    _one_line_error(run_cli([HELLO, "-k", K47, "--config", str(conf)]), "'ignore'")
    conf.write_text('ignore = ["TN001"]\n')
    res = run_cli([HELLO, "-k", K47, "--config", str(conf)])
    assert res.exit_code == 0
    assert "TN001 out-of-tree" not in res.stdout


@pytest.mark.parametrize(
    ("env", "color", "expected"),
    [
        ({"FORCE_COLOR": "1"}, "auto", True),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, "auto", False),
        ({"NO_COLOR": "1"}, "always", True),
        ({"FORCE_COLOR": "1"}, "never", False),
        ({"FORCE_COLOR": "0"}, "auto", False),
    ],
)
def test_colour_conventions(env, color, expected, monkeypatch):
    for name in ("FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    res = run_cli([HELLO, "-k", K47, "--color", color])  # CliRunner's stdout is no tty
    assert ("\x1b[" in res.stdout) is expected


def test_rule_references_are_public():
    for r in ruledata.all_rules().values():
        for ref in r.docs.get("references", []):
            assert not ref.startswith(("abicheck/", "tools/", "tests/", "../")), (r.id, ref)
            assert "shared/" not in ref, (r.id, ref)


def test_ly002_cites_the_kernel_source():
    out = run_cli(["rule", "LY002"]).stdout
    assert "kernel/module/main.c" in out
    assert "../shared" not in out


def test_readme_documents_completion_and_a_venv():
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as f:
        text = f.read()
    assert "_ABICHECK_COMPLETE=bash_source abicheck" in text
    assert "python3 -m venv .venv && . .venv/bin/activate" in text.split("## Use")[0]


def test_rule_files_still_parse():
    rules = os.path.join(os.path.dirname(__file__), "..", "rules")
    for name in ("LY002.toml", "LY005.toml"):
        with open(os.path.join(rules, name), "rb") as f:
            assert tomllib.load(f)["docs"]["references"]


def test_untagged_artefacts_belong_to_the_only_kernel():
    # `upgrade --vmlinux FILE` is not tagged by the group's parser: the path stays whole
    from abicheck.app.cli import _per_kernel, bind_to_kernel

    assert _per_kernel(["/boot/vmlinuz-R"], 1, "--vmlinux") == ["/boot/vmlinuz-R"]
    tagged = bind_to_kernel(["check", "-k", "A", "-k", "B", "--vmlinux", "C:D"])
    assert _per_kernel(tagged[-1:], 2, "--vmlinux") == [None, "C:D"]


def test_config_explain_says_which_way_the_effect_goes(testdata):
    """`config explain CONFIG_KPROBES` with KPROBES=y: the members exist now; turning the
    option off removes them. It used to read "removes" as if y did that."""
    import os

    from conftest import CACHE, kernel

    tree = os.path.join(CACHE, "src", "linux-source-6.1")
    if not os.path.isdir(tree):
        pytest.skip("linux-source-6.1 not fetched: run `python tools/fetch_source.py`")
    res = run_cli(
        [
            "config",
            "explain",
            "CONFIG_KPROBES",
            "--tree",
            tree,
            "--config",
            kernel(testdata, "6.1-a")["config"],
        ]
    )
    assert "CONFIG_KPROBES = y" in res.stdout
    assert (
        "struct-module: set to n instead of y, it removes kprobes_text_start, "
        "kprobes_text_size, kprobe_blacklist, num_kprobe_blacklist"
    ) in res.stdout
