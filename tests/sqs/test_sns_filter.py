"""SNS filter policies (protocols/aws/snsfilter.py): the case table, AWS's error texts,
the once-per-subscription compile and properties that must hold for any input."""

from __future__ import annotations

import ast
import ipaddress
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.aws import snsfilter
from protocols.aws.snsfilter import FilterPolicyError, compile_policy
from tests.sqs.sns_filter_cases import AT_LIMITS, ERRORS, MATCHES, RULES, Case

SOURCES = {"aws", "ruler", "own"}


def verdict(case: Case) -> bool:
    policy = compile_policy(case.policy, case.scope)
    return policy.matches(case.attrs, case.body if case.body is not None else "")


def test_table_covers_the_language() -> None:
    cases = MATCHES + ERRORS + AT_LIMITS
    assert len(cases) >= 80
    assert len({c.id for c in cases}) == len(cases), "case ids are unique"
    assert {c.rule for c in cases} == set(RULES), "every documented rule has a case"
    assert {c.source for c in cases} <= SOURCES
    assert any(c.expect is True for c in MATCHES) and any(c.expect is False for c in MATCHES)


@pytest.mark.parametrize("case", MATCHES + AT_LIMITS, ids=lambda c: c.id)
def test_match_case(case: Case) -> None:
    assert verdict(case) is case.expect


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c.id)
def test_error_case(case: Case) -> None:
    with pytest.raises(FilterPolicyError) as err:
        compile_policy(case.policy, case.scope)
    assert str(err.value) == case.expect
    assert err.value.message == case.expect


def test_error_is_invalid_parameter_text_with_reason_and_subscribe_form() -> None:
    with pytest.raises(FilterPolicyError) as err:
        compile_policy('{"k": [' + ",".join(str(i) for i in range(151)) + "]}")
    e = err.value
    assert isinstance(e, ValueError)
    assert e.reason == "Filter policy is too complex"
    # Subscribe's wording, as recorded from SNS
    assert e.for_subscribe() == (
        "Invalid parameter: Attributes Reason: FilterPolicy: Filter policy is too complex"
    )


def test_scope_value_is_checked_with_aws_text() -> None:
    with pytest.raises(FilterPolicyError) as err:
        compile_policy('{"a": ["b"]}', "RandomValue")
    assert str(err.value) == (
        "Invalid parameter: FilterPolicyScope: Invalid value [RandomValue]. "
        "Please use either MessageBody or MessageAttributes"
    )
    assert err.value.reason is None


def test_combinations_follow_aws_examples() -> None:
    # subscription-filter-policy-constraints: 3 x 1 x 2 = 6
    flat = compile_policy(
        '{"key_a": ["value_one", "value_two", "value_three"], "key_b": ["value_one"],'
        ' "key_c": ["value_one", "value_two"]}'
    )
    assert (flat.combinations, flat.keys) == (6, 3)
    nested = compile_policy(
        '{"key_a": {"key_b": {"key_c": ["v1", "v2", "v3", "v4"]}},'
        ' "key_d": {"key_e": ["v1", "v2", "v3"]}}',
        "MessageBody",
    )
    assert (nested.combinations, nested.keys) == (72, 2)
    ored = compile_policy('{"a": ["1", "2"], "$or": [{"b": ["1", "2", "3"]}, {"c": ["1"]}]}')
    assert (ored.combinations, ored.keys) == (2 * (3 + 1), 3)


def test_empty_policy_matches_everything() -> None:
    for text in ("", "   ", "{}"):
        for scope in ("MessageAttributes", "MessageBody"):
            policy = compile_policy(text, scope)
            assert policy.match_all
            assert policy.matches({}, "not json")


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = snsfilter._json_loads

    def counted(text: str, *a: Any, **kw: Any) -> Any:
        calls.append(text)
        return real(text, *a, **kw)

    monkeypatch.setattr(snsfilter, "_json_loads", counted)
    monkeypatch.setattr(snsfilter, "_last_body", (None, None))
    snsfilter._array_leaves.cache_clear()
    return calls


def test_body_is_parsed_at_most_once_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = compile_policy(
        '{"a": ["1"], "b": {"c": [{"prefix": "x"}]}, "d": [{"numeric": [">", 1]}],'
        ' "$or": [{"f": [{"exists": false}]}, {"g": ["2"]}]}',
        "MessageBody",
    )
    others = [compile_policy(f'{{"a": ["{i}"]}}', "MessageBody") for i in range(10)]
    calls = _counting(monkeypatch)
    body = json.dumps(
        {"a": "1", "b": {"c": "xy"}, "d": 2, "f": 0, "g": "2", "big": list(range(50))}
    )
    # one message fanned out to eleven subscriptions: one parse, whatever the keys
    assert policy.matches({}, body)
    assert [p.matches({}, body) for p in others] == [i == 1 for i in range(10)]
    assert policy.matches({}, body)
    assert calls == [body]
    # the next message (an equal text, another object) is parsed again: no stale reuse
    second = "".join(body)
    assert second is not body
    assert policy.matches({}, second)
    assert calls == [body, second]
    # a different body is judged on its own
    assert not policy.matches({}, json.dumps({"a": "2"}))


def test_string_array_is_parsed_once_across_subscriptions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policies = [compile_policy(f'{{"k": ["{i}"]}}') for i in range(5)]
    calls = _counting(monkeypatch)
    attrs = {"k": ("String.Array", '["1", "3"]')}
    assert [p.matches(attrs, "") for p in policies] == [False, True, False, True, False]
    assert calls == ['["1", "3"]']


def test_attributes_parse_only_named_string_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = compile_policy('{"a": ["1"], "b": ["2"], "c": [{"exists": true}]}')
    calls = _counting(monkeypatch)
    attrs = {
        "a": ("String", "1"),
        "b": ("String.Array", '["0", "2"]'),
        "c": ("Number", "3"),
        "unnamed": ("String.Array", '["x"]'),
    }
    assert policy.matches(attrs, "")
    assert calls == ['["0", "2"]']


def test_module_is_sans_io() -> None:
    tree = ast.parse(Path(snsfilter.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {
        "__future__",
        "collections",
        "decimal",
        "functools",
        "ipaddress",
        "json",
        "math",
        "re",
        "typing",
    }


# -- properties ----------------------------------------------------------------------

words = st.text(alphabet="abAB.1", min_size=0, max_size=4)
word_lists = st.lists(words, min_size=1, max_size=4, unique=True)


def _attr(v: str) -> dict[str, tuple[str, str]]:
    return {"k": ("String", v)}


@settings(max_examples=300, deadline=None)
@given(excluded=word_lists, value=words)
def test_anything_but_is_the_complement_of_exact(excluded: list[str], value: str) -> None:
    exact = compile_policy(json.dumps({"k": excluded}))
    anything_but = compile_policy(json.dumps({"k": [{"anything-but": excluded}]}))
    assert anything_but.matches(_attr(value), "") is not exact.matches(_attr(value), "")
    # an absent key meets neither
    assert not anything_but.matches({"other": ("String", value)}, "")


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(["prefix", "suffix", "equals-ignore-case"]), arg=words, value=words)
def test_anything_but_operator_is_the_complement_of_the_operator(
    op: str, arg: str, value: str
) -> None:
    plain = compile_policy(json.dumps({"k": [{op: arg}]}))
    negated = compile_policy(json.dumps({"k": [{"anything-but": {op: arg}}]}))
    expected = {
        "prefix": value.startswith(arg),
        "suffix": value.endswith(arg),
        "equals-ignore-case": value.lower() == arg.lower(),
    }[op]
    assert plain.matches(_attr(value), "") is expected
    assert negated.matches(_attr(value), "") is not expected


cents = st.integers(min_value=-(10**8), max_value=10**8)


@settings(max_examples=400, deadline=None)
@given(
    lo=cents,
    width=st.integers(min_value=1, max_value=10**6),
    x=cents,
    lo_op=st.sampled_from([">", ">="]),
    hi_op=st.sampled_from(["<", "<="]),
)
def test_numeric_range_agrees_with_decimal_arithmetic(
    lo: int, width: int, x: int, lo_op: str, hi_op: str
) -> None:
    bottom, top, value = Decimal(lo) / 100, Decimal(lo + width) / 100, Decimal(x) / 100
    policy = compile_policy(
        json.dumps({"p": [{"numeric": [lo_op, float(bottom), hi_op, float(top)]}]})
    )
    above = value > bottom if lo_op == ">" else value >= bottom
    below = value < top if hi_op == "<" else value <= top
    assert policy.matches({"p": ("Number", str(value))}, "") is (above and below)
    # the same number in a body, written as JSON
    body_policy = compile_policy(
        json.dumps({"p": [{"numeric": [lo_op, float(bottom), hi_op, float(top)]}]}), "MessageBody"
    )
    assert body_policy.matches({}, f'{{"p": {value}}}') is (above and below)


policies_of_one_key = st.sampled_from(
    [
        ["a"],
        ["a", "b"],
        [{"prefix": "a"}],
        [{"suffix": "b"}],
        [{"anything-but": ["a"]}],
        [{"anything-but": {"prefix": "b"}}],
        [{"equals-ignore-case": "A"}],
        ["ab", {"prefix": "B"}],
    ]
)


@settings(max_examples=300, deadline=None)
@given(values=policies_of_one_key, elements=st.lists(words, max_size=4))
def test_string_array_matches_if_any_element_matches(
    values: list[Any], elements: list[str]
) -> None:
    policy = compile_policy(json.dumps({"k": values}))
    as_array = policy.matches({"k": ("String.Array", json.dumps(elements))}, "")
    assert as_array is any(policy.matches(_attr(e), "") for e in elements)


@settings(max_examples=300, deadline=None)
@given(
    first=policies_of_one_key,
    second=policies_of_one_key,
    x=st.one_of(st.none(), words),
    y=st.one_of(st.none(), words),
)
def test_or_and_and_compose(
    first: list[Any], second: list[Any], x: str | None, y: str | None
) -> None:
    attrs = {name: ("String", v) for name, v in (("x", x), ("y", y)) if v is not None}
    px = compile_policy(json.dumps({"x": first})).matches(attrs, "")
    py = compile_policy(json.dumps({"y": second})).matches(attrs, "")
    either = compile_policy(json.dumps({"$or": [{"x": first}, {"y": second}]}))
    both = compile_policy(json.dumps({"x": first, "y": second}))
    assert either.matches(attrs, "") is (px or py)
    assert both.matches(attrs, "") is (px and py)


@settings(max_examples=300, deadline=None)
@given(values=policies_of_one_key, value=words)
def test_body_scope_agrees_with_attribute_scope_on_flat_strings(
    values: list[Any], value: str
) -> None:
    text = json.dumps({"k": values})
    on_attrs = compile_policy(text).matches(_attr(value), "")
    on_body = compile_policy(text, "MessageBody").matches({}, json.dumps({"k": value}))
    nested = compile_policy(json.dumps({"n": {"k": values}}), "MessageBody")
    assert on_attrs is on_body
    assert nested.matches({}, json.dumps({"n": {"k": value}})) is on_attrs
    assert nested.matches({}, json.dumps({"n.k": value})) is on_attrs


quads = st.lists(
    st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "", "x", "1 ", "٣"])),
    min_size=3,
    max_size=5,
).map(".".join)


@settings(max_examples=400, deadline=None)
@given(
    network=st.ip_addresses(v=4),
    bits=st.integers(0, 31),
    candidate=st.one_of(st.ip_addresses(v=4).map(str), quads, st.ip_addresses(v=6).map(str)),
)
def test_cidr_agrees_with_ipaddress(
    network: ipaddress.IPv4Address, bits: int, candidate: str
) -> None:
    net = ipaddress.ip_network(f"{network}/{bits}", strict=False)
    policy = compile_policy(json.dumps({"ip": [{"cidr": f"{network}/{bits}"}]}))
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        expected = False
    else:
        expected = address.version == 4 and address in net
    assert policy.matches({"ip": ("String", candidate)}, "") is expected


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40))
def test_arbitrary_text_compiles_or_fails_with_invalid_parameter(text: str) -> None:
    for scope in ("MessageAttributes", "MessageBody"):
        try:
            policy = compile_policy(text, scope)
        except FilterPolicyError as err:
            assert str(err).startswith("Invalid parameter: ")
        else:
            policy.matches({"a": ("String", "b")}, text)


# -- hostile input: never an exception other than FilterPolicyError ----------------------


def test_deeply_nested_policy_is_too_complex_not_a_crash() -> None:
    deep_arrays = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    deep_objects = '{"a": ' + '{"b": ' * 200 + '["x"]' + "}" * 200 + "}"
    deep_or = '{"a": ["1"]}'
    for _ in range(480):
        deep_or = '{"$or": [' + deep_or + ', {"b": ["2"]}]}'
    for text, scope in ((deep_arrays, "MessageAttributes"), (deep_objects, "MessageBody")):
        with pytest.raises(FilterPolicyError) as err:
            compile_policy(text, scope)
        assert str(err.value) == "Invalid parameter: FilterPolicy: Filter policy is too complex"
    with pytest.raises(FilterPolicyError, match="too complex"):
        compile_policy(deep_or)


def test_nested_or_within_the_limit_still_works() -> None:
    policy = '{"a": ["1"]}'
    for _ in range(140):
        policy = '{"$or": [' + policy + ', {"b": ["2"]}]}'
    compiled = compile_policy(policy)
    assert compiled.combinations == 141
    assert compiled.matches({"a": ("String", "1")}, "")
    assert compiled.matches({"b": ("String", "2")}, "")
    assert not compiled.matches({"c": ("String", "1")}, "")


def test_hostile_messages_do_not_match_and_do_not_raise() -> None:
    body_policy = compile_policy('{"a": ["x"]}', "MessageBody")
    attr_policy = compile_policy('{"a": ["x"]}')
    too_deep = "[" * 100_000 + "]" * 100_000
    assert not body_policy.matches({}, too_deep)
    assert not body_policy.matches({}, '{"a": ' + too_deep + "}")
    assert not attr_policy.matches({"a": ("String.Array", too_deep)}, "")
    assert not attr_policy.matches({"a": ("String.Array", '{"x": 1}')}, "")
    # arrays nested as deep as the parser allows are still flattened
    assert body_policy.matches({}, '{"a": ' + "[" * 900 + '"x"' + "]" * 900 + "}")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b", "1", "10.0.0.1"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "b", "$or", "prefix", "numeric", "anything-but", "exists"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(policy=json_values, message=json_values)
def test_any_json_policy_compiles_or_is_refused_and_any_message_is_judged(
    policy: Any, message: Any
) -> None:
    for scope in ("MessageAttributes", "MessageBody"):
        try:
            compiled = compile_policy(json.dumps(policy), scope)
        except FilterPolicyError as err:
            assert str(err).startswith("Invalid parameter: ")
            continue
        body = json.dumps(message)
        attrs = {
            "a": ("String.Array", body),
            "b": ("Number", body),
            "prefix": ("String", body),
        }
        assert compiled.matches(attrs, body) in (True, False)
