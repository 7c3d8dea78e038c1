"""Label and field selectors, parsed and printed like upstream apimachinery.

LabelSelector grammar (the `labelSelector` query parameter, `kubectl -l`):
    a=b, a==b, a!=b, a in (x,y), a notin (x), a, !a, a>1, a<1   (comma = AND)
FieldSelector grammar (`fieldSelector`): key=value, key==value, key!=value with
backslash escapes for `\\`, `,` and `=` in values.

Parse errors are StatusError 400 with upstream's message text. Matching runs per
object on list/watch, so requirements are kept as plain tuples.
"""
from __future__ import annotations

from typing import Any, Iterable

from .errors import (FieldError, StatusError, bad_request, forbidden, go_quote, invalid_value,
                     required)
from .validation import is_qualified_name, is_valid_label_value

# operators as upstream's selection.Operator strings
EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GT, LT = "in", "notin", "exists", "!", "gt", "lt"
_BINARY_OPS = "in, notin, =, ==, !=, gt, lt"
_POSITIVE = (IN, EQUALS, DOUBLE_EQUALS)
_NEGATIVE = (NOT_IN, NOT_EQUALS)

Requirement = tuple[str, str, tuple[str, ...]]  # (key, operator, values)


def _go_strings(vals: Iterable[str]) -> str:
    return "[]string{" + ", ".join(go_quote(v) for v in vals) + "}"


def _requirement_errors(key: str, op: str, vals: list[str]) -> list[str]:
    """Upstream's NewRequirement checks, as `field: body` strings (root path unset)."""
    errs: list[str] = []
    msgs = is_qualified_name(key)
    if msgs:
        errs.append(f"key: Invalid value: {go_quote(key)}: " + "; ".join(msgs))
    if op in (IN, NOT_IN) and not vals:
        errs.append(f"values: Invalid value: {_go_strings(vals)}: for 'in', 'notin' operators, "
                    "values set can't be empty")
    elif op in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(vals) != 1:
        errs.append(f"values: Invalid value: {_go_strings(vals)}: exact-match compatibility "
                    "requires one single value")
    elif op in (EXISTS, DOES_NOT_EXIST) and vals:
        errs.append(f"values: Invalid value: {_go_strings(vals)}: values set must be empty for "
                    "exists and does not exist")
    elif op in (GT, LT):
        if len(vals) != 1:
            errs.append(f"values: Invalid value: {_go_strings(vals)}: for 'Gt', 'Lt' operators, "
                        "exactly one value is required")
        for i, v in enumerate(vals):
            if not _is_int64(v):
                errs.append(f"values[{i}]: Invalid value: {go_quote(v)}: for 'Gt', 'Lt' "
                            "operators, the value must be an integer")
    for i, v in enumerate(vals):
        msgs = is_valid_label_value(v)
        if msgs:
            errs.append(f"values[{i}][{key}]: Invalid value: {go_quote(v)}: " + "; ".join(msgs))
    return errs


def _is_int64(v: str) -> bool:
    body = v[1:] if v[:1] in "+-" else v
    return body.isascii() and body.isdigit() and -(2**63) <= int(v) < 2**63


def _aggregate(errs: list[str]) -> str:
    return errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"


# ----- lexer ---------------------------------------------------------------------------------

_SPECIAL = set("=!(),><")
_WS = set(" \t\r\n")
_TOKENS = {")": ")", ",": ",", "!": "!", "==": "==", "=": "=", ">": ">", "in": "in", "<": "<",
           "!=": "!=", "notin": "notin", "(": "("}
ID, END, ERR = "ID", "END", "ERR"


def _lex(s: str) -> list[tuple[str, str]]:
    """Tokens as (kind, literal); kind is ID, END, ERR or the symbol/keyword itself."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _WS:
            i += 1
        if i >= n:
            out.append((END, ""))
            return out
        if s[i] in _SPECIAL:
            j, last = i, None
            while j < n and s[j] in _SPECIAL:
                if s[i:j + 1] in _TOKENS:
                    last = j + 1
                elif last is not None:
                    break
                j += 1
            if last is None:
                out.append((ERR, f"error expected: keyword found '{s[i:j]}'"))
                i = j
            else:
                out.append((_TOKENS[s[i:last]], s[i:last]))
                i = last
            continue
        j = i
        while j < n and s[j] not in _SPECIAL and s[j] not in _WS:
            j += 1
        word = s[i:j]
        out.append((_TOKENS.get(word, ID), word))
        i = j


class _Parser:
    def __init__(self, s: str):
        self.items = _lex(s)
        self.pos = 0

    def _tok(self, i: int, values: bool) -> tuple[str, str]:
        kind, lit = self.items[i]
        if values and kind in ("in", "notin"):
            kind = ID  # keywords are plain identifiers where values are expected
        return kind, lit

    def peek(self, values: bool = True) -> tuple[str, str]:
        return self._tok(self.pos, values)

    def take(self, values: bool = True) -> tuple[str, str]:
        self.pos += 1
        return self._tok(self.pos - 1, values)

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            kind, lit = self.peek()
            if kind in (ID, "!"):
                reqs.append(self.requirement())
                kind, lit = self.take()
                if kind == END:
                    return reqs
                if kind != ",":
                    raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
                kind2, lit2 = self.peek()
                if kind2 not in (ID, "!"):
                    raise ValueError(f"found '{lit2}', expected: identifier after ','")
            elif kind == END:
                return reqs
            else:
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        try:
            key, op = self.key_and_operator()
            if op in (EXISTS, DOES_NOT_EXIST):
                return _new_requirement(key, op, [])
            op = self.operator()
            vals = self.values() if op in (IN, NOT_IN) else self.exact_value()
            return _new_requirement(key, op, sorted(vals))
        except ValueError as e:
            raise ValueError(f"unable to parse requirement: {e}") from None

    def key_and_operator(self) -> tuple[str, str]:
        op = ""
        kind, lit = self.take()
        if kind == "!":
            op = DOES_NOT_EXIST
            kind, lit = self.take()
        if kind != ID:
            raise ValueError(f"found '{lit}', expected: identifier")
        msgs = is_qualified_name(lit)
        if msgs:
            raise ValueError(f"<nil>: Invalid value: {go_quote(lit)}: " + "; ".join(msgs))
        if self.peek()[0] in (END, ","):
            op = op or EXISTS
        return lit, op

    def operator(self) -> str:
        kind, lit = self.take(values=False)
        ops = {"in": IN, "=": EQUALS, "==": DOUBLE_EQUALS, ">": GT, "<": LT, "notin": NOT_IN,
               "!=": NOT_EQUALS}
        if kind not in ops:
            raise ValueError(f"found '{lit}', expected: {_BINARY_OPS}")
        return ops[kind]

    def values(self) -> set[str]:
        kind, lit = self.take()
        if kind != "(":
            raise ValueError(f"found '{lit}' expected: '('")
        kind, lit = self.peek()
        if kind in (ID, ","):
            vals = self.identifiers()
            if self.take()[0] != ")":
                raise ValueError(f"found '{lit}', expected: ')'")
            return vals
        if kind == ")":
            self.take()
            return {""}
        raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        vals: set[str] = set()
        while True:
            kind, lit = self.take()
            if kind == ID:
                vals.add(lit)
                kind2, lit2 = self.peek()
                if kind2 == ",":
                    continue
                if kind2 == ")":
                    return vals
                raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            if kind == ",":  # empty values: "(,a" / "a,)" / "a,,b"
                if not vals:
                    vals.add("")
                kind2 = self.peek()[0]
                if kind2 == ")":
                    vals.add("")
                    return vals
                if kind2 == ",":
                    self.take()
                    vals.add("")
                continue
            raise ValueError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.peek()[0] in (END, ","):
            return {""}
        kind, lit = self.take()
        if kind == ID:
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


def _new_requirement(key: str, op: str, vals: list[str]) -> Requirement:
    errs = _requirement_errors(key, op, vals)
    if errs:
        raise ValueError(_aggregate(errs))
    return (key, op, tuple(vals))


def _requirement_str(r: Requirement) -> str:
    key, op, vals = r
    if op == EXISTS:
        return key
    if op == DOES_NOT_EXIST:
        return "!" + key
    text = ",".join(sorted(vals))
    sym = {EQUALS: "=", DOUBLE_EQUALS: "==", NOT_EQUALS: "!=", GT: ">", LT: "<"}.get(op)
    if sym is not None:
        return f"{key}{sym}{text}"
    return f"{key} {op} ({text})"


def _matches(r: Requirement, labels: dict[str, str]) -> bool:
    key, op, vals = r
    if op in _POSITIVE:
        return key in labels and labels[key] in vals
    if op in _NEGATIVE:
        return key not in labels or labels[key] not in vals
    if op == EXISTS:
        return key in labels
    if op == DOES_NOT_EXIST:
        return key not in labels
    if key not in labels or len(vals) != 1 or not _is_int64(labels[key]) or not _is_int64(vals[0]):
        return False
    have, want = int(labels[key]), int(vals[0])
    return have > want if op == GT else have < want


class LabelSelector:
    """A conjunction of label requirements, sorted by key like upstream."""

    __slots__ = ("reqs", "nothing", "_exact")

    def __init__(self, reqs: Iterable[Requirement] = (), nothing: bool = False):
        self.reqs: tuple[Requirement, ...] = tuple(sorted(reqs, key=lambda r: r[0]))
        self.nothing = nothing
        # fast path: every requirement is key=value
        self._exact: tuple[tuple[str, str], ...] | None = None
        if all(op in _POSITIVE and len(v) == 1 for _, op, v in self.reqs):
            self._exact = tuple((k, v[0]) for k, _, v in self.reqs)

    # ----- construction -----
    @classmethod
    def parse(cls, s: str) -> "LabelSelector":
        try:
            return cls(_Parser(s).parse())
        except ValueError as e:
            raise bad_request(str(e)) from None

    @classmethod
    def everything(cls) -> "LabelSelector":
        return cls()

    @classmethod
    def nothing_selector(cls) -> "LabelSelector":
        return cls(nothing=True)

    @classmethod
    def from_map(cls, m: dict[str, str] | None) -> "LabelSelector":
        """A set-based selector (`spec.selector` of RC/Service): every key=value must match."""
        return cls((k, EQUALS, (v,)) for k, v in (m or {}).items())

    @classmethod
    def from_api(cls, sel: dict | None, nil_matches: bool = False) -> "LabelSelector":
        """A metav1.LabelSelector. nil matches nothing (or everything with nil_matches);
        an empty selector matches everything. Invalid selectors raise StatusError 400."""
        if sel is None:
            return cls() if nil_matches else cls(nothing=True)
        reqs: list[Requirement] = []
        errs: list[str] = []
        for k, v in (sel.get("matchLabels") or {}).items():
            errs += _requirement_errors(k, EQUALS, [v])
            reqs.append((k, EQUALS, (v,)))
        ops = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
        for expr in sel.get("matchExpressions") or []:
            op = ops.get(expr.get("operator", ""))
            if op is None:
                raise bad_request(f'"{expr.get("operator", "")}" is not a valid label selector '
                                  "operator")
            vals = list(expr.get("values") or [])
            errs += _requirement_errors(expr.get("key", ""), op, vals)
            reqs.append((expr.get("key", ""), op, tuple(vals)))
        if errs:
            raise bad_request(_aggregate(errs))
        return cls(reqs)

    # ----- use -----
    def matches(self, labels: dict[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        exact = self._exact
        if exact is not None:
            for k, v in exact:
                if labels.get(k) != v:
                    return False
            return True
        for r in self.reqs:
            if not _matches(r, labels):
                return False
        return True

    def empty(self) -> bool:
        return not self.nothing and not self.reqs

    def requirements(self) -> list[Requirement]:
        return list(self.reqs)

    def requires_exact_match(self, key: str) -> str | None:
        """The single value `key` must have, if the selector pins it (for indexing)."""
        for k, op, vals in self.reqs:
            if k == key:
                return vals[0] if op in _POSITIVE and len(vals) == 1 else None
        return None

    def __str__(self) -> str:
        return ",".join(_requirement_str(r) for r in self.reqs)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r}{', nothing' if self.nothing else ''})"

    def __eq__(self, other: Any) -> bool:
        return (isinstance(other, LabelSelector) and self.reqs == other.reqs
                and self.nothing == other.nothing)

    def __hash__(self) -> int:
        return hash((self.reqs, self.nothing))


def validate_label_selector(sel: Any, path: str) -> list[FieldError]:
    """metav1.LabelSelector validation for strategies (upstream ValidateLabelSelector)."""
    if sel is None:
        return []
    from .validation import validate_labels
    errs = validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op, vals = expr.get("operator", ""), expr.get("values") or []
        if op in ("In", "NotIn"):
            if not vals:
                errs.append(required(f"{p}.values",
                                     "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if vals:
                errs.append(forbidden(f"{p}.values", "may not be specified when `operator` is "
                                      "'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid_value(f"{p}.operator", op, "not a valid selector operator"))
        key = expr.get("key", "")
        errs += [invalid_value(f"{p}.key", key, m) for m in is_qualified_name(key)]
        for j, v in enumerate(vals):
            errs += [invalid_value(f"{p}.values[{j}]", v, m) for m in is_valid_label_value(v)]
    return errs


# ----- field selectors -----------------------------------------------------------------------


def escape_field_value(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(s: str) -> str:
    if not any(c in s for c in "\\,="):
        return s
    out: list[str] = []
    in_slash = False
    for c in s:
        if in_slash:
            if c not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            raise bad_request(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    terms, start, in_slash = [], 0, False
    for i, c in enumerate(s):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


class FieldSelector:
    """A conjunction of `field=value` / `field!=value` terms (missing fields read as "")."""

    __slots__ = ("reqs",)

    def __init__(self, reqs: Iterable[tuple[str, str, str]] = ()):
        self.reqs: tuple[tuple[str, str, str], ...] = tuple(reqs)

    @classmethod
    def parse(cls, s: str) -> "FieldSelector":
        reqs = []
        for part in sorted(_split_terms(s)) if s else []:
            if not part:
                continue
            split = _split_term(part)
            if split is None:
                raise bad_request(f"invalid selector: '{s}'; can't understand '{part}'")
            key, op, rhs = split
            reqs.append((key, "!=" if op == "!=" else "=", unescape_field_value(rhs)))
        return cls(reqs)

    @classmethod
    def from_map(cls, m: dict[str, str]) -> "FieldSelector":
        return cls((k, "=", v) for k, v in m.items())

    def matches(self, fields: dict[str, str]) -> bool:
        for key, op, value in self.reqs:
            if (fields.get(key, "") == value) != (op == "="):
                return False
        return True

    def keys(self) -> set[str]:
        return {k for k, _, _ in self.reqs}

    def requirements(self) -> list[tuple[str, str, str]]:
        return list(self.reqs)

    def requires_exact_match(self, key: str) -> str | None:
        for k, op, v in self.reqs:
            if k == key and op == "=":
                return v
        return None

    def empty(self) -> bool:
        return not self.reqs

    def __str__(self) -> str:
        return ",".join(f"{k}{op}{escape_field_value(v)}" for k, op, v in self.reqs)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, FieldSelector) and self.reqs == other.reqs

    def __hash__(self) -> int:
        return hash(self.reqs)


__all__ = ["LabelSelector", "FieldSelector", "validate_label_selector", "StatusError",
           "escape_field_value", "unescape_field_value"]


def node_selector_requirement_matches(expr: dict, value: str | None) -> bool:
    """One NodeSelectorRequirement (In, NotIn, Exists, DoesNotExist, Gt, Lt) against a
    node's label or field value (None: the node has none)."""
    op, vals = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in vals
    if op == "NotIn":
        return value is None or value not in vals
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and len(vals) == 1 and value is not None:
        try:
            have, bound = int(value), int(vals[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False
