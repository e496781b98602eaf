"""Hostile input never reaches a terminal or a CI log raw (issue 10).

The modules are built here from the real samples/modules/hello.ko: its ``.modinfo`` is
replaced (``objcopy --update-section``) by one whose license, vermagic and name carry
terminal escapes, GitHub/Azure workflow commands, C1 controls, invalid UTF-8 and rich
markup; a scanned directory adds file names with a newline, a workflow command and a
byte that is not UTF-8. Every format runs as a real process, on standard output and
with ``-o``; each line is then read the way the GitHub runner reads it
(actions/runner ``src/Runner.Common/ActionCommand.cs``): ``::`` after leading whitespace
(``TryParseV2``), ``##[`` anywhere (``TryParse``), and Azure's ``##vso[`` anywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import REPO, sample, sample_kernel

from abicheck.reporters import FORMATS
from abicheck.reporters.escape import display, display_lines, display_path, json_text, safe_text

K47 = "6.1.0-47-amd64"

# What the fuzzing campaign put into .modinfo. The license reaches LI001's message and
# kernel_says; the vermagic word VM001's message; the name every kernel_says line.
LICENSE = (
    b"Prop\n::add-mask::x \x1b]0;title\x07 \x1b]52;c;aGVsbG8=\x07 \x1bc csi\x9bZ c1\xc2\x9bY"
    b" bad\xff [bold]B[/bold] [link=https://example.com]L[/link] ##[error]v1 ##vso[task.x]az"
)
VERMAGIC = b"6.1.0-47-amd64 SMP\x1b]0;vm\x07 ::stop-commands::tok preempt mod_unload modversions "
NAME = b"hello\x1b[2J"
# file names in the scanned directory (bytes: one is not UTF-8)
NAMES = (
    b"new\nline_synthetic.ko",
    b"::stop-commands::tok_synthetic.ko",
    b"bad\xffname_synthetic.ko",
    b"junk\n::add-mask::j_synthetic.ko",  # not ELF: an error line on stderr too
)

_OUR_SGR = re.compile(rb"\x1b\[[0-9;]*m")
_RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ANNOTATION = re.compile(r"^::(error|warning|notice) file=[^:]*::")


def runner_command(line: str) -> str | None:
    """The workflow command GitHub's runner (or Azure's agent) would take from a line."""
    trimmed = line.lstrip()  # TryParseV2: message.TrimStart()
    if trimmed.startswith("::") and trimmed.find("::", 2) > 0:
        return trimmed[2 : trimmed.find("::", 2)].split(" ")[0]
    for prefix in ("##[", "##vso["):  # TryParse: message.IndexOf(prefix), anywhere
        at = line.lower().find(prefix)
        if at >= 0 and "]" in line[at:]:
            return line[at:]
    return None


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, str]:
    if shutil.which("objcopy") is None:
        pytest.skip("objcopy (binutils) is needed to build the hostile modules")
    tmp = tmp_path_factory.mktemp("hostile")
    modinfo = tmp / "modinfo_synthetic.bin"
    fields = [b"license=" + LICENSE, b"name=" + NAME, b"vermagic=" + VERMAGIC, b"retpoline=Y"]
    modinfo.write_bytes(b"\0".join(fields) + b"\0")
    scan = tmp / "scan"
    scan.mkdir()
    module = scan / "modinfo_synthetic.ko"
    subprocess.run(
        ["objcopy", f"--update-section=.modinfo={modinfo}", sample("modules", "hello.ko"), module],
        check=True,
    )
    for name in NAMES:
        target = os.path.join(os.fsencode(scan), name)
        if name.startswith(b"junk"):
            with open(target, "wb") as f:
                f.write(b"synthetic: not an ELF file")
        else:
            shutil.copyfile(sample("modules", "hello.ko"), target)
    return {"module": str(module), "dir": str(scan), "tmp": str(tmp)}


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _run(args: list[str]) -> tuple[int, bytes, bytes]:
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "abicheck", *args], capture_output=True, env=env, cwd=REPO
    )
    return proc.returncode, proc.stdout, proc.stderr


def _assert_safe(raw: bytes, fmt: str, color: bool = False) -> str:
    """Valid UTF-8, no raw control byte but layout, no line the runner takes as a command
    except the annotations abicheck writes itself. Returns the decoded text."""
    if color:
        raw = _OUR_SGR.sub(b"", raw)
    text = raw.decode("utf-8")  # strict: an undecodable byte fails here
    assert not _RAW_CONTROL.search(text), repr(_RAW_CONTROL.search(text))
    for line in text.split("\n"):
        assert not line[:1] or not _RAW_CONTROL.match(line[:1])
        command = runner_command(line)
        if fmt == "github" and _ANNOTATION.match(line):
            assert command in ("error", "warning", "notice"), line
        else:
            assert command is None, line
    return text


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_escapes_hostile_modules_and_file_names(hostile, fmt, tmp_path):
    args = ["check", hostile["dir"], "--kernel", sample_kernel(K47), "--format", fmt]
    code, out, err = _run(args)
    out_file = tmp_path / f"report.{fmt}"
    code_o, out_o, err_o = _run([*args, "-o", str(out_file)])
    # the unreadable junk file makes the run exit 2, the other modules are still checked
    assert code == code_o == 2, err.decode(errors="replace")
    assert out_o == b"" and err_o == err
    assert out_file.read_bytes() == out
    text = _assert_safe(out, fmt)
    stderr = _assert_safe(err, "text")
    assert b"Traceback" not in err
    (junk_error,) = stderr.splitlines()
    assert junk_error.startswith("abicheck: error: ")
    assert "junk\\n::add-mask::j_synthetic.ko: not an ELF file" in junk_error

    if fmt in ("json", "sarif"):
        doc = json.loads(text)
        data = "\n".join(_strings(doc))
        # JSON keeps the exact text (json.dumps escaped the controls) ...
        assert "\x1b]0;title\x07" in data and "\x1b]52;c;aGVsbG8=\x07" in data
        assert "::stop-commands::tok_synthetic.ko" in data
        # ... except an undecodable byte, which no strict JSON reader accepts
        assert "bad\\xffname_synthetic.ko" in data
        assert "##[error]v1" in data and "##vso[task.x]az" in data
    else:
        if fmt == "junit":
            ET.fromstring(text)  # still XML 1.0
        assert "\\x1b]0;title\\x07" in text
        assert "\\x1b]52;c;aGVsbG8=\\x07" in text
        assert "\\x1bc csi\ufffdZ c1\\x9bY" in text  # a lone 0x9b byte is not UTF-8: U+FFFD
        assert "\\x23#[error]v1" in text and "\\x23#vso[task.x]az" in text
        assert "bad\\xffname_synthetic.ko" in text
        assert "[bold]B[/bold] [link=https://example.com]L[/link]" in text
    if fmt == "text":
        assert "license 'Prop\\n::add-mask::x " in text
        assert "/new\\nline_synthetic.ko  →  " in text
        # the kernel logs the name's escape on each of its lines
        assert "kernel says: hello\\x1b[2J: module license 'Prop" in text
    if fmt == "github":
        # a newline stays the runner's own exact escape; the rest is made visible
        assert "license 'Prop%0A::add-mask::x \\x1b]0;title\\x07" in text
        assert "file=" + hostile["dir"].replace(":", "%3A") + "/new%0Aline_synthetic.ko," in text


def test_text_with_colour_and_a_matrix_interprets_no_markup(hostile):
    code, out, err = _run(
        [
            "check",
            hostile["dir"],
            "--kernel",
            sample_kernel(K47),
            "--kernel",
            sample_kernel("6.1.0-56-amd64"),
            "--color",
            "always",
        ]
    )
    assert code == 2, err
    text = _assert_safe(out, "text", color=True)
    assert b"\x1b[" in out  # the colour is there, and it is ours only
    assert b"\x1b]8;" not in out  # no hyperlink from [link=...]
    assert "[bold]B[/bold] [link=https://example.com]L[/link]" in text
    # the matrix row of a file named "::stop-commands::..." does not start a command
    assert "/::stop-commands::tok_synthetic.ko " in text


def test_output_file_that_cannot_be_written(hostile):
    code, out, err = _run(
        ["check", hostile["module"], "--kernel", sample_kernel(K47), "-o", "/nonexistent/dir/x"]
    )
    assert code == 2
    assert out == b""
    assert err.decode() == (
        "abicheck: error: /nonexistent/dir/x: cannot write the report: No such file or directory\n"
    )


# --- the escaping functions themselves ----------------------------------------------------


def test_display_makes_every_control_and_undecodable_byte_visible():
    assert display("a\nb\tc\rd\x1b]0;t\x07\x7f\x9b") == "a\\nb\\tc\\rd\\x1b]0;t\\x07\\x7f\\x9b"
    assert display(os.fsdecode(b"x\xff\x80")) == "x\\xff\\x80"
    assert display("line\u2028sep") == "line\\u2028sep"
    assert display("a ##[error]b ##VSO[task]c") == "a \\x23#[error]b \\x23#VSO[task]c"
    assert display("a\nb", keep_newlines=True) == "a\nb"
    clean = "hello.ko: µs → ünïcode, [bold], a::b, #1"
    assert display(clean) == clean


def test_a_path_that_would_start_a_command_gets_dot_slash():
    assert display_path("::add-mask::x.ko") == "./::add-mask::x.ko"
    assert display_path("  ::x.ko") == "./  ::x.ko"
    assert display_path("/abs/::x.ko") == "/abs/::x.ko"
    assert display_path("dir/x.ko") == "dir/x.ko"


def test_safe_text_breaks_commands_at_line_starts_only():
    text = "ok::fine\n  ::add-mask::x\n\x1b[1m::warning::y\n::z"
    assert safe_text(text) == "ok::fine\n  \\x3a:add-mask::x\n\x1b[1m\\x3a:warning::y\n\\x3a:z"
    assert safe_text(safe_text(text)) == safe_text(text)
    assert safe_text("a:b\n:c\n") == "a:b\n:c\n"


def test_json_text_keeps_values_but_not_lone_surrogates():
    value = {"p": os.fsdecode(b"a\xff"), "e": "\U0001f600", "b": "\\udcff", "c": "\x9b ##[x]"}
    for ascii_only in (True, False):
        encoded = json_text(json.dumps(value, ensure_ascii=ascii_only))
        encoded.encode("utf-8")  # no surrogate left to fail
        assert "\x9b" not in encoded and "##[" not in encoded
        back = json.loads(encoded)
        assert back == {"p": "a\\xff", "e": "\U0001f600", "b": "\\udcff", "c": "\x9b ##[x]"}


def test_display_lines_keeps_the_layout_of_a_finished_report():
    report = "CONFIG_X: y -> n\n  \x1b]0;t\x07 from ::add-mask::k\n::warning::w\n"
    assert display_lines(report) == (
        "CONFIG_X: y -> n\n  \\x1b]0;t\\x07 from ::add-mask::k\n\\x3a:warning::w\n"
    )
