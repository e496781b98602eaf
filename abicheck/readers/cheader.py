"""Just enough of the C preprocessor to read what a kernel header composes.

Used to evaluate ``include/linux/vermagic.h`` (and the arch header it includes) the way
the target's own headers do, rather than from a hand-kept copy: distributions patch
these files. Supports conditionals (``#if/#ifdef/#ifndef/#elif/#else/#endif`` with
``defined``, ``IS_ENABLED``, integer arithmetic and comparisons), object-like
``#define``, ``#undef``, ``#include`` resolved inside the given include directories,
and ``#error``. Nothing is executed; unknown identifiers in ``#if`` are 0, as in C.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>0[xX][0-9a-fA-F]+|\d+)[uUlL]*'
    r"|(?P<id>[A-Za-z_]\w*)|(?P<op>&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%()!<>~&|^?:,]))"
)


class PreprocessorError(ValueError):
    pass


class Preprocessor:
    def __init__(
        self,
        include_dirs: Iterable[str],
        defines: Mapping[str, str] | None = None,
        max_depth: int = 16,
    ) -> None:
        self.include_dirs = list(include_dirs)
        self.macros: dict[str, str] = dict(defines or {})
        self.errors: list[str] = []
        self.missing_includes: list[str] = []
        self.files: list[str] = []
        self.max_depth = max_depth

    # -- files -------------------------------------------------------------------------

    def include(self, name: str, depth: int = 0) -> bool:
        for d in self.include_dirs:
            path = os.path.join(d, name)
            if os.path.isfile(path):
                self.process_file(path, depth)
                return True
        self.missing_includes.append(name)
        return False

    def process_file(self, path: str, depth: int = 0) -> None:
        if depth > self.max_depth:
            raise PreprocessorError(f"{path}: #include nested too deeply")
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        self.files.append(path)
        self.process(text, depth)

    def process(self, text: str, depth: int = 0) -> None:
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", "", text)
        text = text.replace("\\\n", " ")
        # stack of (this branch active, some branch of this group was taken)
        stack: list[tuple[bool, bool]] = []

        def active() -> bool:
            return all(a for a, _ in stack)

        for line in text.splitlines():
            s = line.strip()
            if not s.startswith("#"):
                continue
            directive, _, rest = s[1:].strip().partition(" ")
            rest = rest.strip()
            if directive in ("ifdef", "ifndef"):
                on = (rest.split()[0] in self.macros) if rest else False
                if directive == "ifndef":
                    on = not on
                stack.append((on, on))
            elif directive == "if":
                on = active() and bool(self.evaluate(rest))
                stack.append((on, on))
            elif directive == "elif":
                if not stack:
                    raise PreprocessorError("#elif without #if")
                _, taken = stack.pop()
                outer = active()
                on = not taken and outer and bool(self.evaluate(rest))
                stack.append((on, taken or on))
            elif directive == "else":
                if not stack:
                    raise PreprocessorError("#else without #if")
                _, taken = stack.pop()
                stack.append((not taken, True))
            elif directive == "endif":
                if not stack:
                    raise PreprocessorError("#endif without #if")
                stack.pop()
            elif not active():
                continue
            elif directive == "define":
                m = re.match(r"([A-Za-z_]\w*)(\([^)]*\))?\s*(.*)", rest)
                if m and not m.group(2):
                    self.macros[m.group(1)] = m.group(3).strip()
                elif m:
                    self.macros.setdefault(m.group(1), "")
            elif directive == "undef":
                self.macros.pop(rest.split()[0] if rest else "", None)
            elif directive == "include":
                m = re.match(r'[<"]([^>"]+)[>"]', rest)
                if m:
                    self.include(m.group(1), depth + 1)
            elif directive == "error":
                self.errors.append(rest)

    # -- expressions ---------------------------------------------------------------

    def evaluate(self, expr: str) -> int:
        expr = re.sub(r"\bdefined\s*\(\s*(\w+)\s*\)", lambda m: self._defined(m.group(1)), expr)
        expr = re.sub(r"\bdefined\s+(\w+)", lambda m: self._defined(m.group(1)), expr)
        expr = re.sub(
            r"\b(IS_ENABLED|IS_BUILTIN|IS_MODULE|IS_REACHABLE)\s*\(\s*(\w+)\s*\)",
            lambda m: self._kconfig_macro(m.group(1), m.group(2)),
            expr,
        )
        tokens = self._tokens(self._expand(expr))
        parser = _ExprParser(tokens)
        value = parser.ternary()
        if parser.pos != len(tokens):
            raise PreprocessorError(f"cannot evaluate #if {expr!r}")
        return value

    def _defined(self, name: str) -> str:
        return "1" if name in self.macros else "0"

    def _kconfig_macro(self, which: str, option: str) -> str:
        builtin = option in self.macros and self.macros[option] not in ("0", "")
        module = (option + "_MODULE") in self.macros
        value = {"IS_BUILTIN": builtin, "IS_MODULE": module}.get(which, builtin or module)
        return "1" if value else "0"

    def _expand(self, text: str, seen: frozenset[str] = frozenset()) -> str:
        def repl(m: re.Match[str]) -> str:
            name = m.group(0)
            if name in self.macros and name not in seen:
                return self._expand(self.macros[name], seen | {name})
            return name

        # identifiers outside string literals
        parts = re.split(r'("(?:[^"\\]|\\.)*")', text)
        return "".join(
            p if i % 2 else re.sub(r"[A-Za-z_]\w*", repl, p) for i, p in enumerate(parts)
        )

    @staticmethod
    def _tokens(text: str) -> list[str]:
        out, pos = [], 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise PreprocessorError(f"unexpected text in expression: {text[pos:]!r}")
            out.append(m.group(m.lastgroup or "op"))
            pos = m.end()
        return out

    # -- strings ---------------------------------------------------------------------

    def string(self, macro: str) -> str:
        """The string a macro expands to, adjacent literals concatenated.

        Raises PreprocessorError if the expansion has anything but string literals.
        """
        if macro not in self.macros:
            raise PreprocessorError(f"{macro} is not defined")
        expansion = self._expand(self.macros[macro], frozenset({macro})).strip()
        out = []
        for tok in self._tokens(expansion) if expansion else []:
            if not tok.startswith('"'):
                raise PreprocessorError(f"{macro} expands to non-string token {tok!r}")
            out.append(bytes(tok[1:-1], "utf-8").decode("unicode_escape"))
        return "".join(out)


class _ExprParser:
    """Recursive descent over C's integer expression grammar, no side effects."""

    _BINARY = (
        ("||",),
        ("&&",),
        ("|",),
        ("^",),
        ("&",),
        ("==", "!="),
        ("<", ">", "<=", ">="),
        ("<<", ">>"),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise PreprocessorError("unexpected end of expression")
        self.pos += 1
        return tok

    def ternary(self) -> int:
        cond = self.binary(0)
        if self.peek() == "?":
            self.take()
            a = self.ternary()
            if self.take() != ":":
                raise PreprocessorError("expected ':'")
            b = self.ternary()
            return a if cond else b
        return cond

    def binary(self, level: int) -> int:
        if level == len(self._BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in self._BINARY[level]:
            op = self.take()
            right = self.binary(level + 1)
            left = _apply(op, left, right)
        return left

    def unary(self) -> int:
        tok = self.take()
        if tok == "!":
            return int(not self.unary())
        if tok == "-":
            return -self.unary()
        if tok == "+":
            return self.unary()
        if tok == "~":
            return ~self.unary()
        if tok == "(":
            v = self.ternary()
            if self.take() != ")":
                raise PreprocessorError("expected ')'")
            return v
        if tok[0].isdigit():
            return int(tok, 0)
        if tok[0].isalpha() or tok[0] == "_":
            if self.peek() == "(":  # an unknown function-like macro: skip its arguments
                depth = 0
                while True:
                    t = self.take()
                    depth += t == "("
                    depth -= t == ")"
                    if depth == 0:
                        break
            return 0
        raise PreprocessorError(f"unexpected token {tok!r}")


def _apply(op: str, a: int, b: int) -> int:
    if op == "||":
        return int(bool(a) or bool(b))
    if op == "&&":
        return int(bool(a) and bool(b))
    if op in ("/", "%") and b == 0:
        raise PreprocessorError("division by zero in #if")
    return {
        "|": lambda: a | b,
        "^": lambda: a ^ b,
        "&": lambda: a & b,
        "==": lambda: int(a == b),
        "!=": lambda: int(a != b),
        "<": lambda: int(a < b),
        ">": lambda: int(a > b),
        "<=": lambda: int(a <= b),
        ">=": lambda: int(a >= b),
        "<<": lambda: a << b,
        ">>": lambda: a >> b,
        "+": lambda: a + b,
        "-": lambda: a - b,
        "*": lambda: a * b,
        "/": lambda: int(a / b),
        "%": lambda: a % b,
    }[op]()


def defines_from_config(config: Mapping[str, str]) -> dict[str, str]:
    """The macros include/generated/autoconf.h would hold for a .config."""
    out = {}
    for name, value in config.items():
        if value == "y":
            out[name] = "1"
        elif value == "m":
            out[name + "_MODULE"] = "1"
        elif value != "n":
            out[name] = value
    return out
