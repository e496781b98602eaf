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
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*)'
    r"|(?P<id>[A-Za-z_]\w*)|(?P<op>&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%()!<>~&|^?:,]))"
)


# What one expression or string may expand to: vermagic.h's VERMAGIC_STRING is under 200
# characters. The bounds turn a hostile header into a PreprocessorError, not a hang.
_MAX_EXPANSION = 1 << 16
_MAX_MACRO_DEPTH = 64
_MAX_FILES = 256  # files read per Preprocessor: vermagic.h pulls in about ten


class PreprocessorError(ValueError):
    pass


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]*)|([0-7]{1,3})|(.))", re.S)


def _unescape(body: str) -> str:
    """The characters of a C string literal's body (C11 6.4.4.4 escapes)."""

    def one(m: re.Match[str]) -> str:
        hexa, octal, other = m.groups()
        if hexa is not None:
            if not hexa:
                raise PreprocessorError("\\x used with no following hex digits")
            return chr(int(hexa, 16) & 0xFF)  # a char holds 8 bits
        if octal is not None:
            return chr(int(octal, 8) & 0xFF)
        return _ESCAPES.get(other, other)  # \\ \" \' \? stand for themselves

    return _ESCAPE.sub(one, body)


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
        if len(self.files) >= _MAX_FILES:  # a.h including b.h twice, b.h a.h twice ...
            raise PreprocessorError(f"{path}: more than {_MAX_FILES} files included")
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
        try:
            value = parser.ternary()
        except RecursionError:  # a backstop: nesting is bounded by _MAX_NESTING
            raise PreprocessorError(f"#if expression nested too deeply: {expr[:80]!r}") from None
        if parser.pos != len(tokens):
            raise PreprocessorError(f"cannot evaluate #if {expr[:80]!r}")
        return value[0]

    def _defined(self, name: str) -> str:
        return "1" if name in self.macros else "0"

    def _kconfig_macro(self, which: str, option: str) -> str:
        builtin = option in self.macros and self.macros[option] not in ("0", "")
        module = (option + "_MODULE") in self.macros
        value = {"IS_BUILTIN": builtin, "IS_MODULE": module}.get(which, builtin or module)
        return "1" if value else "0"

    def _expand(self, text: str, seen: frozenset[str] = frozenset()) -> str:
        """``text`` with its object-like macros replaced, recursively, C's rule that a
        macro is not expanded inside its own expansion keeping it finite; the bounds
        keep it small (``#define B A A`` over 40 levels is 2**40 tokens)."""
        budget = [_MAX_EXPANSION]
        return self._expand_in(text, seen, budget)

    def _expand_in(self, text: str, seen: frozenset[str], budget: list[int]) -> str:
        if len(seen) > _MAX_MACRO_DEPTH:
            raise PreprocessorError(f"macros nested more than {_MAX_MACRO_DEPTH} deep")

        def repl(m: re.Match[str]) -> str:
            name = m.group(0)
            if name in self.macros and name not in seen:
                out = self._expand_in(self.macros[name], seen | {name}, budget)
                budget[0] -= len(out)
                if budget[0] < 0:
                    raise PreprocessorError(
                        f"macro expansion beyond {_MAX_EXPANSION} characters (from {name})"
                    )
                return out
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
            out.append(_unescape(tok[1:-1]))
        return "".join(out)


# C11 6.10.1p4: #if arithmetic is done in intmax_t / uintmax_t, 64 bits on every Linux
# target. A value is (integer, unsigned?) with the integer already wrapped to its type.
_BITS = 64
_MASK = (1 << _BITS) - 1
_Value = tuple[int, bool]
# Nesting of parentheses, unary operators and ?: . Real headers stay under ten; each level
# costs a few Python frames, and this keeps far below the interpreter's recursion limit.
_MAX_NESTING = 100


def _wrap(v: int, unsigned: bool) -> _Value:
    v &= _MASK
    if not unsigned and v >> (_BITS - 1):
        v -= 1 << _BITS
    return v, unsigned


def _number(tok: str) -> _Value:
    """An integer constant: decimal, 0x hex or 0-prefixed octal, suffixes u/l/ll."""
    digits = tok.rstrip("uUlL")
    unsigned = "u" in tok[len(digits) :].lower()
    try:
        if digits[:2] in ("0x", "0X"):
            v = int(digits[2:], 16)
        elif digits.startswith("0"):
            v = int(digits, 8)
        else:
            v = int(digits)
    except ValueError:
        raise PreprocessorError(f"invalid integer constant {tok!r}") from None
    if v > _MASK:
        raise PreprocessorError(f"integer constant {tok!r} is too large for uintmax_t")
    # a constant that does not fit intmax_t is unsigned (C11 6.4.4.1; GCC says
    # "integer constant is so large that it is unsigned" for a decimal one)
    return v, unsigned or v >> (_BITS - 1) != 0


_PRECEDENCE = {
    "||": 1,
    "&&": 2,
    "|": 3,
    "^": 4,
    "&": 5,
    "==": 6,
    "!=": 6,
    "<": 7,
    ">": 7,
    "<=": 7,
    ">=": 7,
    "<<": 8,
    ">>": 8,
    "+": 9,
    "-": 9,
    "*": 10,
    "/": 10,
    "%": 10,
}


class _ExprParser:
    """Precedence climbing over C's #if grammar, no side effects.

    Operands of ``&&``, ``||`` and ``?:`` that C does not evaluate are parsed with
    ``live`` off, so that ``defined(X) && 1 / X`` is not a division by zero.
    """

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise PreprocessorError("unexpected end of expression")
        self.pos += 1
        return tok

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise PreprocessorError(f"#if expression nested more than {_MAX_NESTING} deep")

    def ternary(self, live: bool = True) -> _Value:
        self._enter()
        cond = self.binary(1, live)
        if self.peek() == "?":
            self.take()
            a = self.ternary(live and bool(cond[0]))
            if self.take() != ":":
                raise PreprocessorError("expected ':'")
            b = self.ternary(live and not cond[0])
            unsigned = a[1] or b[1]  # the usual arithmetic conversions
            cond = _wrap(a[0] if cond[0] else b[0], unsigned)
        self.depth -= 1
        return cond

    def binary(self, min_prec: int, live: bool) -> _Value:
        left = self.unary(live)
        while True:
            op = self.peek()
            prec = _PRECEDENCE.get(op or "", 0)
            if prec < min_prec:
                return left
            self.take()
            if op == "&&":
                right = self.binary(prec + 1, live and bool(left[0]))
                left = (int(bool(left[0]) and bool(right[0])), False)
            elif op == "||":
                right = self.binary(prec + 1, live and not left[0])
                left = (int(bool(left[0]) or bool(right[0])), False)
            else:
                right = self.binary(prec + 1, live)
                left = _apply(op or "", left, right, live)

    def unary(self, live: bool) -> _Value:
        # prefix operators collected in a loop: "!!!!...1" needs no recursion
        ops = []
        while self.peek() in ("!", "-", "+", "~"):
            ops.append(self.take())
        v = self.primary(live)
        for op in reversed(ops):
            if op == "!":
                v = (int(not v[0]), False)
            elif op == "-":
                v = _wrap(-v[0], v[1])
            elif op == "~":
                v = _wrap(~v[0], v[1])
        return v

    def primary(self, live: bool) -> _Value:
        tok = self.take()
        if tok == "(":
            v = self.ternary(live)
            if self.take() != ")":
                raise PreprocessorError("expected ')'")
            return v
        if tok[0].isdigit():
            return _number(tok)
        if tok[0].isalpha() or tok[0] == "_":
            if self.peek() == "(":  # an unknown function-like macro: skip its arguments
                depth = 0
                while True:
                    t = self.take()
                    depth += t == "("
                    depth -= t == ")"
                    if depth == 0:
                        break
            return 0, False
        raise PreprocessorError(f"unexpected token {tok!r}")


def _shift(op: str, a: _Value, count: _Value) -> _Value:
    """C leaves shifts by a negative count or by the width or more undefined; GCC's
    preprocessor (libcpp/expr.cc, num_lshift/num_rshift) gives them a value, used here:
    a negative count shifts the other way, and a count past the width shifts every bit
    out (a negative signed value shifted right gives -1)."""
    n = count[0] if count[1] or count[0] >= 0 else -count[0]
    if not count[1] and count[0] < 0:
        op = "<<" if op == ">>" else ">>"
    v, unsigned = a
    if op == "<<":
        return (0, unsigned) if n >= _BITS else _wrap(v << n, unsigned)
    if n >= _BITS:
        return (-1 if v < 0 else 0), unsigned
    return v >> n, unsigned  # Python's >> on a negative int is arithmetic, as GCC's


def _apply(op: str, a: _Value, b: _Value, live: bool = True) -> _Value:
    if op in ("<<", ">>"):
        return _shift(op, a, b)  # the type of the left operand, no conversions
    unsigned = a[1] or b[1]
    x, y = a[0] & _MASK if unsigned else a[0], b[0] & _MASK if unsigned else b[0]
    if op in ("==", "!=", "<", ">", "<=", ">="):
        holds = {"==": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}
        return int(holds[op]), False
    if op in ("/", "%"):
        if y == 0:
            if live:
                raise PreprocessorError("division by zero in #if")
            return 0, unsigned
        q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)  # C truncates toward 0
        return _wrap(q if op == "/" else x - q * y, unsigned)
    r = {
        "|": lambda: x | y,
        "^": lambda: x ^ y,
        "&": lambda: x & y,
        "+": lambda: x + y,
        "-": lambda: x - y,
        "*": lambda: x * y,
    }[op]()
    return _wrap(r, unsigned)


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
