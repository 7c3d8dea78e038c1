"""Label and field selectors: grammar, canonical strings, matching, upstream error texts."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybernetes.machinery.errors import StatusError
from pybernetes.machinery.selectors import (FieldSelector, LabelSelector, escape_field_value,
                                            validate_label_selector)


@pytest.mark.parametrize("text,canonical", [
    ("", ""),
    ("app=web", "app=web"),
    ("app==web", "app==web"),
    ("tier!=db , app=web", "app=web,tier!=db"),
    ("env in (prod, qa),!legacy,team", "env in (prod,qa),!legacy,team"),
    ("env notin (qa,dev)", "env notin (dev,qa)"),
    ("x in (in,notin)", "x in (in,notin)"),
    ("a in ()", "a in ()"),
    ("a in (,b,)", "a in (,b)"),
    ("a=", "a="),
    ("example.com/k=v", "example.com/k=v"),
    ("n>5,m<3", "m<3,n>5"),
])
def test_parse_canonical_string(text, canonical):
    assert str(LabelSelector.parse(text)) == canonical


@pytest.mark.parametrize("text,message", [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=b=c", "found '=', expected: ',' or 'end of string'"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("a>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' "
            "operators, the value must be an integer"),
])
def test_parse_errors_are_400_with_upstream_text(text, message):
    with pytest.raises(StatusError) as ei:
        LabelSelector.parse(text)
    assert ei.value.code == 400 and ei.value.reason == "BadRequest"
    assert ei.value.message == message


def test_invalid_key_and_value_messages():
    with pytest.raises(StatusError) as ei:
        LabelSelector.parse("-a=b")
    assert ei.value.message.startswith('unable to parse requirement: <nil>: Invalid value: "-a": '
                                       "name part must consist of alphanumeric characters")
    with pytest.raises(StatusError) as ei:
        LabelSelector.parse("a=b_")
    assert ei.value.message.startswith('unable to parse requirement: values[0][a]: Invalid value: '
                                       '"b_": a valid label must be an empty string')


def test_matching_semantics():
    sel = LabelSelector.parse("app=web,env in (prod,qa),!legacy,tier notin (db),team")
    assert sel.matches({"app": "web", "env": "qa", "team": ""})
    assert not sel.matches({"app": "web", "env": "qa"})  # team must exist
    assert not sel.matches({"app": "web", "env": "dev", "team": "x"})
    assert not sel.matches({"app": "web", "env": "qa", "team": "x", "legacy": "1"})
    assert not sel.matches({"app": "web", "env": "qa", "team": "x", "tier": "db"})
    assert LabelSelector.parse("x!=y").matches({})  # absent key satisfies !=
    assert not LabelSelector.parse("x=").matches({})
    assert LabelSelector.parse("x=").matches({"x": ""})
    assert LabelSelector.parse("n>5").matches({"n": "6"})
    assert not LabelSelector.parse("n>5").matches({"n": "five"})
    assert LabelSelector.parse("").matches(None) and LabelSelector.parse("").empty()


def test_from_api_nil_empty_and_expressions():
    assert not LabelSelector.from_api(None).matches({"a": "b"})
    assert not LabelSelector.from_api(None).empty()
    assert LabelSelector.from_api(None, nil_matches=True).matches({"a": "b"})
    assert LabelSelector.from_api({}).matches({"a": "b"}) and LabelSelector.from_api({}).empty()
    sel = LabelSelector.from_api({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "env", "operator": "In", "values": ["qa", "prod"]},
        {"key": "old", "operator": "DoesNotExist"},
        {"key": "tier", "operator": "NotIn", "values": ["db"]},
        {"key": "team", "operator": "Exists"}]})
    assert str(sel) == "app=web,env in (prod,qa),!old,team,tier notin (db)"
    assert sel.matches({"app": "web", "env": "prod", "team": "a"})
    assert not sel.matches({"app": "web", "env": "prod", "team": "a", "old": "1"})
    with pytest.raises(StatusError) as ei:
        LabelSelector.from_api({"matchExpressions": [{"key": "a", "operator": "Gt"}]})
    assert ei.value.message == '"Gt" is not a valid label selector operator'
    with pytest.raises(StatusError):
        LabelSelector.from_api({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})


def test_from_map_is_sorted_and_exact():
    sel = LabelSelector.from_map({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.matches({"a": "1", "b": "2", "c": "3"}) and not sel.matches({"a": "1"})
    assert sel.requires_exact_match("b") == "2"


def test_validate_label_selector_field_errors():
    errs = validate_label_selector({"matchLabels": {"ok": "bad value"}, "matchExpressions": [
        {"key": "a", "operator": "In"},
        {"key": "b", "operator": "Exists", "values": ["x"]},
        {"key": "-c", "operator": "Foo"}]}, "spec.selector")
    got = [(e.type, e.field) for e in errs]
    assert got == [
        ("FieldValueInvalid", "spec.selector.matchLabels"),
        ("FieldValueRequired", "spec.selector.matchExpressions[0].values"),
        ("FieldValueForbidden", "spec.selector.matchExpressions[1].values"),
        ("FieldValueInvalid", "spec.selector.matchExpressions[2].operator"),
        ("FieldValueInvalid", "spec.selector.matchExpressions[2].key")]
    assert errs[1].message() == ("Required value: must be specified when `operator` is 'In' or "
                                 "'NotIn'")
    assert errs[3].message() == 'Invalid value: "Foo": not a valid selector operator'
    assert validate_label_selector(None, "x") == []


# ----- hypothesis: parse(str(sel)) is the same selector --------------------------------------
_name = st.from_regex(r"[a-z0-9]([a-z0-9_.-]{0,8}[a-z0-9])?", fullmatch=True).filter(
    lambda s: s not in ("in", "notin"))
_key = st.one_of(_name, st.builds(lambda p, n: f"{p}.io/{n}", _name.filter(
    lambda s: "_" not in s and ".." not in s and not s.endswith(".") and "-." not in s
    and ".-" not in s), _name))
_req = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", _key, _name),
    st.builds(lambda k, v: f"{k}!={v}", _key, _name),
    st.builds(lambda k, vs: f"{k} in ({','.join(vs)})", _key, st.lists(_name, min_size=1, max_size=4)),
    st.builds(lambda k, vs: f"{k} notin ({','.join(vs)})", _key, st.lists(_name, min_size=1, max_size=4)),
    st.builds(lambda k: k, _key),
    st.builds(lambda k: f"!{k}", _key),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_req, max_size=5))
def test_label_selector_round_trip(reqs):
    sel = LabelSelector.parse(",".join(reqs))
    again = LabelSelector.parse(str(sel))
    assert again == sel and str(again) == str(sel)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_key, _name, max_size=5), st.dictionaries(_key, _name, max_size=5))
def test_map_selector_matches_like_subset(want, have):
    sel = LabelSelector.from_map(want)
    assert sel.matches(have) == all(have.get(k) == v for k, v in want.items())
    assert LabelSelector.parse(str(sel)).matches(have) == sel.matches(have)


# ----- field selectors ------------------------------------------------------------------------
def test_field_selector_parse_and_match():
    fs = FieldSelector.parse("status.phase!=Running,metadata.name==web")
    assert fs.requirements() == [("metadata.name", "=", "web"), ("status.phase", "!=", "Running")]
    assert fs.keys() == {"metadata.name", "status.phase"}
    assert fs.matches({"metadata.name": "web", "status.phase": "Pending"})
    assert not fs.matches({"metadata.name": "web", "status.phase": "Running"})
    assert FieldSelector.parse("spec.nodeName=").matches({})  # missing reads as ""
    assert str(fs) == "metadata.name=web,status.phase!=Running"
    assert FieldSelector.parse("").matches({"a": "b"}) and FieldSelector.parse("").empty()


def test_field_selector_escapes():
    fs = FieldSelector.parse(r"metadata.name=a\,b\=c\\d")
    assert fs.requirements() == [("metadata.name", "=", "a,b=c\\d")]
    assert str(fs) == r"metadata.name=a\,b\=c\\d"
    for bad, msg in [("x=a,b", "invalid selector: 'x=a,b'; can't understand 'b'"),
                     (r"x=\q", r"invalid field selector: invalid escape sequence: \q"),
                     ("x=a=b", "invalid field selector: unescaped character in value: 61"),
                     ("x=a\\", "invalid field selector: invalid escape sequence: \\")]:
        with pytest.raises(StatusError) as ei:
            FieldSelector.parse(bad)
        assert ei.value.code == 400 and ei.value.message == msg


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_field_value_escape_round_trip(value):
    fs = FieldSelector.parse("metadata.name=" + escape_field_value(value))
    assert fs.requirements() == [("metadata.name", "=", value)]
    assert FieldSelector.parse(str(fs)) == fs
