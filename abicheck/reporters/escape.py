"""Output-edge escaping: no byte an input controls reaches a terminal or a CI log raw.

Module files (``.modinfo``, symbol, section and ``__versions`` names, signer strings) and
the names of files in a scanned directory are hostile input. Printed raw they can drive
the terminal (``ESC ] 0 ;`` sets the window title, ``ESC ] 52 ;`` writes the clipboard,
``ESC c`` resets it, U+009B is a one-character CSI) or the CI runner that reads the log:

- GitHub Actions (actions/runner ``src/Runner.Common/ActionCommand.cs``) takes a line as a
  workflow command when it starts with ``::`` *after leading whitespace is trimmed*
  (``TryParseV2``: ``message.TrimStart()``), and, in the older syntax, wherever ``##[``
  appears in the line (``TryParse``: ``message.IndexOf("##[")``). ``::add-mask::`` hides
  text from the log and ``::stop-commands::`` turns annotation processing off.
- Azure Pipelines takes ``##vso[`` anywhere in a line as a logging command.

So every field from an input goes through :func:`display` (control characters, DEL,
C1 and undecodable bytes become visible ``\\x1b``, ``\\n``, ``\\xff``; ``##[`` and
``##vso[`` are broken as ``\\x23#[``), and every line a reporter produces goes through
:func:`safe_text` (a line whose first visible characters are ``::`` gets its first colon
written ``\\x3a``). A path that would start a line so is written ``./PATH``
(:func:`display_path`). JSON documents keep their exact data where JSON can carry it:
:func:`json_text` only rewrites the encoded text, not the values it decodes to, except for
lone surrogates (undecodable file-name bytes), which no strict JSON parser accepts.

The escapes are one-way: a backslash in the input is not doubled, so ``\\x1b`` in a
report may also be those four characters in the module. They exist to be seen.
"""

from __future__ import annotations

import re

# C0, DEL, C1, the Unicode line and paragraph separators (some viewers break lines on
# them), and lone surrogates: os.fsdecode turns an undecodable file-name byte 0xNN into
# U+DCNN ("surrogateescape"), which cannot be encoded as UTF-8 at all.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNSAFE_NOT_LF = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# The runner's older command syntax and Azure's: matched anywhere in a line, so broken
# wherever they occur; "vso" in any case, to be safe whatever the agent compares.
_COMMAND_ANYWHERE = re.compile(r"#(?=#(?:\[|[vV][sS][oO]\[))")
# After leading whitespace (what .NET's TrimStart removes) and the SGR colour codes a
# reporter itself wrote, "::" would start a workflow command.
_COMMAND_AT_START = re.compile(r"^((?:[^\S\n]|\x1b\[[0-9;]*m)*):(?=:)", re.MULTILINE)
_LINE_PREFIXES = ("::", "##[", "##vso[")


def _escape(c: str) -> str:
    named = _NAMED.get(c)
    if named:
        return named
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # the original byte, as surrogateescape encoded it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _escape_char(m: re.Match[str]) -> str:
    return _escape(m.group())


def _escape_in_line(m: re.Match[str]) -> str:
    c = m.group()
    return c if c in "\r\n" else _escape(c)


def display(text: str, *, keep_newlines: bool = False) -> str:
    """One input-controlled field as printable, single-line text.

    ``keep_newlines`` leaves CR and LF for a format that escapes them itself, exactly
    (``--format github``: ``%0D``, ``%0A``, which the runner turns back into line breaks).
    """
    if _UNSAFE.search(text):
        text = _UNSAFE.sub(_escape_in_line if keep_newlines else _escape_char, text)
    if "#" in text:
        text = _COMMAND_ANYWHERE.sub(r"\\x23", text)
    return text


def display_path(path: str) -> str:
    """A file name for a line of its own or the start of one: :func:`display`, and
    ``./`` before a relative path that would otherwise begin the line as a command."""
    shown = display(path)
    if shown.lstrip().startswith(_LINE_PREFIXES):
        return "./" + shown
    return shown


def safe_text(text: str) -> str:
    """The final pass over a report's (or a message's) lines: no line can start a CI
    command, whatever the fields in it said. Idempotent; clean text passes unchanged."""
    if "#" in text:
        text = _COMMAND_ANYWHERE.sub(r"\\x23", text)
    if "::" in text:
        text = _COMMAND_AT_START.sub(r"\1\\x3a", text)
    return text


def needs_display(joined: str, lines: int) -> bool:
    """Whether fields joined into ``lines`` lines (one LF each) hold anything
    :func:`display` would change: a fast test over the whole report, so that clean
    reports, nearly all of them, skip escaping field by field."""
    return (
        joined.count("\n") != lines or _UNSAFE_NOT_LF.search(joined) is not None or "##" in joined
    )


def display_lines(text: str) -> str:
    """A finished multi-line report from a producer that did not escape its fields: each
    line through :func:`display`, then :func:`safe_text`."""
    return safe_text("\n".join(display(line) for line in text.split("\n")))


def message_line(text: str) -> str:
    """A message for people on standard error: one line, whatever its parts held."""
    return safe_text(display(text))


# --- JSON --------------------------------------------------------------------------------

# In encoded JSON text: a raw lone surrogate (ensure_ascii=False), or an escaped one
# (ensure_ascii=True; a pair stays, it is one valid character), each after an even run
# of backslashes so that an escaped backslash followed by "udc80" is left alone.
_JSON_SURROGATE = re.compile(
    r"[\ud800-\udfff]"
    r"|(?<!\\)((?:\\\\)*)(\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|\\ud[89a-f][0-9a-f]{2})"
)
# DEL and C1 are not escaped by json.dumps(ensure_ascii=False); U+2028/2029 neither.
_RAW_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_RAW_CONTROL = re.compile("[\x7f-\x9f\u2028\u2029]")


def _json_surrogate(m: re.Match[str]) -> str:
    esc = m.group(2)
    if esc is None:  # a raw surrogate character
        return _escape(m.group()).replace("\\", "\\\\")
    if len(esc) == 12:  # a valid pair
        return m.group()
    return m.group(1) + _escape(chr(int(esc[2:], 16))).replace("\\", "\\\\")


def json_text(text: str) -> str:
    """Encoded JSON, made safe to print and valid UTF-8; it decodes to the same values
    except that a lone surrogate becomes its visible escape (``\\xff``)."""
    if "\\ud" in text or _RAW_SURROGATE.search(text):
        text = _JSON_SURROGATE.sub(_json_surrogate, text)
    text = _JSON_RAW_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if "#" in text:
        # JSON itself never writes '#' outside a string; \u0023 decodes to the same '#'
        text = _COMMAND_ANYWHERE.sub(r"\\u0023", text)
    return text
