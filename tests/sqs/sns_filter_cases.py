"""The SNS filter-policy table: policy, message, expected verdict or AWS's error text.

Each case names the rule of the AWS SNS developer guide ("Amazon SNS message filtering")
it checks (`RULES` below gives the page each tag stands for). Error texts come from:

- "aws": recorded from real SNS responses (InvalidParameter messages of Subscribe /
  SetSubscriptionAttributes, captured against AWS by LocalStack's snapshot tests
  `test_sns_filter_policy.snapshot.json`, recorded 2024-05; the Jackson location suffix
  AWS appends is left out, see snsfilter's docstring) or quoted in public reports (the
  5-keys text);
- "ruler": Event Ruler's (aws/event-ruler, the matcher SNS's texts come from) for a case
  no AWS recording shows;
- "own": ours, where neither was found.

For a verdict row, "aws" means the guide's own example (or its plain wording) gives the
verdict, "ruler" Event Ruler's behaviour, "own" our reading where the guide is silent.

A message is `attrs` (name -> (DataType, StringValue)) for scope MessageAttributes or
`body` (the Message text) for MessageBody.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RULES = {
    "and": "and-or-logic: AND logic (keys)",
    "or": "and-or-logic: OR logic (values of a key)",
    "$or": "and-or-logic: OR operator",
    "exact": "string-value-matching: Exact matching",
    "anything-but": "string-value-matching: Anything-but matching",
    "ab-prefix": "string-value-matching: Using a prefix with the anything-but operator",
    "ab-suffix": "string-value-matching: Using a suffix with the anything-but operator",
    "ab-ignore-case": "string-value-matching: Anything-but with equals-ignore-case",
    "ignore-case": "string-value-matching: Equals-ignore-case matching",
    "prefix": "string-value-matching: Prefix matching",
    "suffix": "string-value-matching: Suffix matching",
    "cidr": "string-value-matching: IP address matching",
    "num-exact": "numeric-value-matching: Exact matching",
    "num-anything-but": "numeric-value-matching: Anything-but matching",
    "num-range": "numeric-value-matching: Value range matching",
    "exists": "attribute-key-matching: Key matching (exists)",
    "array": "string-value-matching: String.Array elements each count",
    "types": "subscription-filter-policy-constraints: data types compared (Binary ignored)",
    "body": "message-filtering: payload-based filtering (nested keys, arrays)",
    "limits": "subscription-filter-policy-constraints: keys, combinations, size, range",
    "syntax": "subscription-filter-policy-constraints / Event Ruler: policy grammar",
}

FP = "Invalid parameter: FilterPolicy: "


@dataclass(frozen=True)
class Case:
    """One row: `expect` is True/False (matches) or the error message compile raises."""

    id: str
    rule: str
    policy: str
    expect: bool | str
    attrs: dict[str, tuple[str, str]] = field(default_factory=dict)
    body: str | None = None
    source: str = "aws"

    @property
    def scope(self) -> str:
        return "MessageAttributes" if self.body is None else "MessageBody"


def S(v: str) -> tuple[str, str]:
    return ("String", v)


def N(v: str) -> tuple[str, str]:
    return ("Number", v)


def A(v: str) -> tuple[str, str]:
    return ("String.Array", v)


CI = '{"customer_interests": ["rugby", "tennis"]}'
AB = '{"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}'
RANGE = '{"price_usd": [{"numeric": [">", 0, "<=", 150]}]}'
OR_POLICY = (
    '{"source": ["aws.cloudwatch"],'
    ' "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]}'
)
NESTED = (
    "Invalid parameter: Filter policy scope MessageAttributes does not support nested filter policy"
)

MATCHES: list[Case] = [
    # exact strings, OR within a key
    Case("exact-1", "exact", CI, True, {"customer_interests": S("rugby")}),
    Case("exact-2", "or", CI, True, {"customer_interests": S("tennis")}),
    Case("exact-miss", "exact", CI, False, {"customer_interests": S("baseball")}),
    Case("exact-case", "exact", CI, False, {"customer_interests": S("Rugby")}),
    Case("exact-absent", "exact", CI, False, {"other": S("rugby")}),
    Case("exact-no-attrs", "exact", CI, False, {}),
    Case("exact-not-number", "types", '{"k": ["100"]}', False, {"k": N("100")}, source="ruler"),
    Case("exact-empty-string", "exact", '{"k": [""]}', True, {"k": S("")}),
    Case(
        "exact-custom-type",
        "types",
        '{"k": ["v"]}',
        True,
        {"k": ("String.custom", "v")},
        source="own",
    ),
    Case("binary-ignored", "types", '{"k": ["dg=="]}', False, {"k": ("Binary", "dg==")}),
    Case("ignore-other-attrs", "exact", CI, True, {"customer_interests": S("rugby"), "x": S("y")}),
    # AND across keys
    Case(
        "and-both",
        "and",
        '{"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]}',
        True,
        {"customer_interests": S("rugby"), "price_usd": N("101")},
    ),
    Case(
        "and-one-fails",
        "and",
        '{"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]}',
        False,
        {"customer_interests": S("rugby"), "price_usd": N("100")},
    ),
    Case(
        "and-one-missing",
        "and",
        '{"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]}',
        False,
        {"customer_interests": S("rugby")},
    ),
    # String.Array
    Case("array-any", "array", CI, True, {"customer_interests": A('["rugby", "tennis"]')}),
    Case("array-one", "array", CI, True, {"customer_interests": A('["baseball", "tennis"]')}),
    Case("array-none", "array", CI, False, {"customer_interests": A('["baseball"]')}),
    Case("array-empty", "array", CI, False, {"customer_interests": A("[]")}),
    Case("array-number-elem", "array", '{"k": [10]}', True, {"k": A('["a", 10]')}),
    Case(
        "array-number-vs-string", "array", '{"k": ["10"]}', False, {"k": A("[10]")}, source="ruler"
    ),
    Case("array-bool", "array", '{"k": [true]}', True, {"k": A("[false, true]")}, source="ruler"),
    Case("array-null", "array", '{"k": [null]}', True, {"k": A('["x", null]')}, source="ruler"),
    Case("array-bad-json", "array", CI, False, {"customer_interests": A("[rugby")}),
    Case("array-prefix", "array", '{"k": [{"prefix": "bas"}]}', True, {"k": A('["x", "bass"]')}),
    # prefix / suffix / equals-ignore-case
    Case("prefix-1", "prefix", '{"k": [{"prefix": "bas"}]}', True, {"k": S("baseball")}),
    Case("prefix-2", "prefix", '{"k": [{"prefix": "bas"}]}', True, {"k": S("basketball")}),
    Case("prefix-miss", "prefix", '{"k": [{"prefix": "bas"}]}', False, {"k": S("rugby")}),
    Case("prefix-case", "prefix", '{"k": [{"prefix": "bas"}]}', False, {"k": S("Baseball")}),
    Case(
        "prefix-number", "prefix", '{"k": [{"prefix": "1"}]}', False, {"k": N("12")}, source="ruler"
    ),
    Case("suffix-1", "suffix", '{"k": [{"suffix": "ball"}]}', True, {"k": S("baseball")}),
    Case("suffix-miss", "suffix", '{"k": [{"suffix": "ball"}]}', False, {"k": S("rugby")}),
    Case(
        "ignore-case-1",
        "ignore-case",
        '{"k": [{"equals-ignore-case": "RugBY"}]}',
        True,
        {"k": S("rugby")},
    ),
    Case(
        "ignore-case-2",
        "ignore-case",
        '{"k": [{"equals-ignore-case": "rugby"}]}',
        True,
        {"k": S("RUGBY")},
    ),
    Case(
        "ignore-case-miss",
        "ignore-case",
        '{"k": [{"equals-ignore-case": "rugby"}]}',
        False,
        {"k": S("rugbyy")},
    ),
    Case(
        "mixed-or",
        "or",
        '{"k": ["tennis", {"prefix": "bas"}, {"suffix": "by"}]}',
        True,
        {"k": S("rugby")},
    ),
    # anything-but (strings)
    Case("ab-1", "anything-but", AB, True, {"customer_interests": S("baseball")}),
    Case("ab-2", "anything-but", AB, True, {"customer_interests": S("football")}),
    Case("ab-excluded", "anything-but", AB, False, {"customer_interests": S("rugby")}),
    Case("ab-absent", "anything-but", AB, False, {"other": S("x")}),
    Case(
        "ab-array-some",
        "anything-but",
        AB,
        True,
        {"customer_interests": A('["rugby", "baseball"]')},
    ),
    Case(
        "ab-array-all", "anything-but", AB, False, {"customer_interests": A('["rugby", "tennis"]')}
    ),
    Case(
        "ab-single", "anything-but", '{"k": [{"anything-but": "rugby"}]}', True, {"k": S("tennis")}
    ),
    Case(
        "ab-or-exists-false",
        "anything-but",
        '{"k": [{"anything-but": "x"}, {"exists": false}]}',
        True,
        {"other": S("1")},
    ),
    Case(
        "ab-prefix",
        "ab-prefix",
        '{"k": [{"anything-but": {"prefix": "bas"}}]}',
        True,
        {"k": S("rugby")},
    ),
    Case(
        "ab-prefix-miss",
        "ab-prefix",
        '{"k": [{"anything-but": {"prefix": "bas"}}]}',
        False,
        {"k": S("baseball")},
    ),
    Case(
        "ab-suffix",
        "ab-suffix",
        '{"k": [{"anything-but": {"suffix": "ball"}}]}',
        True,
        {"k": S("rugby")},
    ),
    Case(
        "ab-suffix-miss",
        "ab-suffix",
        '{"k": [{"anything-but": {"suffix": "ball"}}]}',
        False,
        {"k": S("football")},
    ),
    Case(
        "ab-ignore-case",
        "ab-ignore-case",
        '{"k": [{"anything-but": {"equals-ignore-case": ["Rugby", "TENNIS"]}}]}',
        False,
        {"k": S("tennis")},
        source="ruler",
    ),
    Case(
        "ab-ignore-case-pass",
        "ab-ignore-case",
        '{"k": [{"anything-but": {"equals-ignore-case": "Rugby"}}]}',
        True,
        {"k": S("golf")},
        source="ruler",
    ),
    # numbers
    Case(
        "num-eq",
        "num-exact",
        '{"price_usd": [{"numeric": ["=", 301.5]}]}',
        True,
        {"price_usd": N("301.5")},
    ),
    Case(
        "num-eq-exp",
        "num-exact",
        '{"price_usd": [{"numeric": ["=", 301.5]}]}',
        True,
        {"price_usd": N("3.015e2")},
    ),
    Case(
        "num-eq-miss",
        "num-exact",
        '{"price_usd": [{"numeric": ["=", 301.5]}]}',
        False,
        {"price_usd": N("301.51")},
    ),
    Case("num-eq-string-attr", "num-exact", '{"p": [{"numeric": ["=", 5]}]}', False, {"p": S("5")}),
    Case("num-plain", "num-exact", '{"p": [5]}', True, {"p": N("5.0")}),
    Case("num-precision", "limits", '{"p": [{"numeric": ["=", 1]}]}', True, {"p": N("1.000001")}),
    Case("num-precision-5", "limits", '{"p": [{"numeric": ["=", 1]}]}', False, {"p": N("1.00001")}),
    Case(
        "num-big-plain",
        "num-exact",
        '{"acct": [123456789012]}',
        True,
        {"acct": N("123456789012")},
        source="ruler",
    ),
    Case(
        "num-big-range",
        "limits",
        '{"p": [{"numeric": [">", 0]}]}',
        False,
        {"p": N("2000000000")},
        source="own",
    ),
    Case("num-huge-plain", "num-exact", '{"n": [1e400]}', True, {"n": N("1E+400")}, source="ruler"),
    Case("num-huge-other", "num-exact", '{"n": [1e400]}', False, {"n": N("1e399")}, source="ruler"),
    Case(
        "num-ab",
        "num-anything-but",
        '{"price": [{"anything-but": [100, 500]}]}',
        True,
        {"price": N("101")},
    ),
    Case(
        "num-ab-2",
        "num-anything-but",
        '{"price": [{"anything-but": [100, 500]}]}',
        True,
        {"price": N("100.1")},
    ),
    Case(
        "num-ab-miss",
        "num-anything-but",
        '{"price": [{"anything-but": [100, 500]}]}',
        False,
        {"price": N("100")},
    ),
    Case(
        "num-ab-array",
        "num-anything-but",
        '{"price": [{"anything-but": [100, 500]}]}',
        True,
        {"price": A("[100, 50]")},
        source="own",
    ),
    Case("range-neg", "num-range", '{"p": [{"numeric": ["<", 0]}]}', True, {"p": N("-0.5")}),
    Case("range-neg-miss", "num-range", '{"p": [{"numeric": ["<", 0]}]}', False, {"p": N("0")}),
    Case("range-top-incl", "num-range", RANGE, True, {"price_usd": N("150")}),
    Case("range-top-over", "num-range", RANGE, False, {"price_usd": N("150.001")}),
    Case("range-bottom-open", "num-range", RANGE, False, {"price_usd": N("0")}),
    Case("range-inside", "num-range", RANGE, True, {"price_usd": N("0.00001")}),
    Case("range-ge", "num-range", '{"p": [{"numeric": [">=", 10]}]}', True, {"p": N("10")}),
    Case("range-le", "num-range", '{"p": [{"numeric": ["<=", 10]}]}', True, {"p": N("10")}),
    Case(
        "range-ge-lt",
        "num-range",
        '{"p": [{"numeric": [">=", 10, "<", 20]}]}',
        False,
        {"p": N("20")},
    ),
    Case("range-not-number", "num-range", RANGE, False, {"price_usd": N("abc")}, source="own"),
    # exists
    Case("exists-true", "exists", '{"store": [{"exists": true}]}', True, {"store": S("fans")}),
    Case("exists-true-miss", "exists", '{"store": [{"exists": true}]}', False, {"x": S("fans")}),
    Case(
        "exists-false",
        "exists",
        '{"store": [{"exists": false}]}',
        True,
        {"customer_interests": A('["baseball"]')},
    ),
    Case(
        "exists-false-miss", "exists", '{"store": [{"exists": false}]}', False, {"store": S("fans")}
    ),
    Case("exists-false-empty", "exists", '{"store": [{"exists": false}]}', False, {}),
    Case(
        "exists-number",
        "exists",
        '{"store": [{"exists": true}]}',
        True,
        {"store": N("99"), "def": N("99")},
    ),
    # cidr
    Case("cidr-4", "cidr", '{"ip": [{"cidr": "10.0.0.0/24"}]}', True, {"ip": S("10.0.0.255")}),
    Case("cidr-4-miss", "cidr", '{"ip": [{"cidr": "10.0.0.0/24"}]}', False, {"ip": S("10.0.1.0")}),
    Case(
        "cidr-4-host-bits",
        "cidr",
        '{"ip": [{"cidr": "10.0.0.7/24"}]}',
        True,
        {"ip": S("10.0.0.1")},
        source="ruler",
    ),
    Case(
        "cidr-6", "cidr", '{"ip": [{"cidr": "2001:db8::/32"}]}', True, {"ip": S("2001:db8:ffff::1")}
    ),
    Case(
        "cidr-6-miss",
        "cidr",
        '{"ip": [{"cidr": "2001:db8::/32"}]}',
        False,
        {"ip": S("2001:db9::1")},
    ),
    Case(
        "cidr-family",
        "cidr",
        '{"ip": [{"cidr": "0.0.0.0/0"}]}',
        False,
        {"ip": S("::1")},
        source="ruler",
    ),
    Case("cidr-not-ip", "cidr", '{"ip": [{"cidr": "10.0.0.0/8"}]}', False, {"ip": S("ten")}),
    # $or
    Case(
        "or-op-first",
        "$or",
        OR_POLICY,
        True,
        {"source": S("aws.cloudwatch"), "metricName": S("CPUUtilization")},
    ),
    Case(
        "or-op-second",
        "$or",
        OR_POLICY,
        True,
        {"source": S("aws.cloudwatch"), "namespace": S("AWS/EC2")},
    ),
    Case(
        "or-op-none",
        "$or",
        OR_POLICY,
        False,
        {"source": S("aws.cloudwatch"), "namespace": S("AWS/ES")},
    ),
    Case(
        "or-op-and-fails",
        "$or",
        OR_POLICY,
        False,
        {"source": S("aws.s3"), "namespace": S("AWS/EC2")},
    ),
    Case(
        "or-op-nested-or",
        "$or",
        '{"$or": [{"a": ["1"]}, {"$or": [{"b": ["2"]}, {"c": ["3"]}]}]}',
        True,
        {"c": S("3")},
    ),
    Case(
        "or-one-object-is-key",
        "$or",
        '{"$or": ["x"]}',
        True,
        {"$or": S("x")},
    ),
    # body scope
    Case("body-flat", "body", CI, True, body='{"customer_interests": "rugby"}'),
    Case("body-flat-miss", "body", CI, False, body='{"customer_interests": "baseball"}'),
    Case("body-array", "body", AB, True, body='{"customer_interests": ["rugby", "baseball"]}'),
    Case(
        "body-nested",
        "body",
        '{"object": {"key": [{"prefix": "auto-"}]}}',
        True,
        body='{"object": {"key": "auto-test"}}',
    ),
    Case(
        "body-nested-miss",
        "body",
        '{"object": {"key": [{"prefix": "auto-"}]}}',
        False,
        body='{"object": {"key": "home-test"}}',
    ),
    Case(
        "body-dotted-name",
        "body",
        '{"object": {"nested": ["string.value"]}}',
        True,
        body='{"object.nested": "string.value"}',
    ),
    Case(
        "body-dotted-policy",
        "body",
        '{"object.nested.test": ["string.value"]}',
        True,
        body='{"object": {"nested.test": "string.value"}}',
    ),
    Case(
        "body-array-of-objects",
        "body",
        '{"Records": {"s3": {"object": {"key": [{"prefix": "auto-"}]}}}}',
        True,
        body='{"Records": [{"s3": {"object": {"key": "home-1"}}},'
        ' {"s3": {"object": {"key": "auto-2"}}}]}',
    ),
    Case(
        "body-number",
        "body",
        '{"price_usd": [{"numeric": ["=", 301.5]}]}',
        True,
        body='{"price_usd": 3.015e2}',
    ),
    Case("body-number-string", "body", '{"p": [{"numeric": [">", 1]}]}', False, body='{"p": "5"}'),
    Case("body-bool", "body", '{"ok": [true]}', True, body='{"ok": true}'),
    Case("body-bool-not-one", "body", '{"ok": [1]}', False, body='{"ok": true}', source="ruler"),
    Case("body-null", "body", '{"k": [null]}', True, body='{"k": null}'),
    Case("body-not-json", "body", CI, False, body="rugby"),
    Case("body-not-object", "body", CI, False, body='["rugby"]'),
    Case("body-exists-leaf", "body", '{"a": [{"exists": true}]}', True, body='{"a": 0}'),
    Case(
        "body-exists-intermediate",
        "body",
        '{"a": [{"exists": true}]}',
        False,
        body='{"a": {"b": 1}}',
    ),
    Case("body-exists-null", "body", '{"a": [{"exists": true}]}', False, body='{"a": null}'),
    Case("body-exists-false", "body", '{"a": [{"exists": false}]}', True, body='{"b": 1}'),
    Case(
        "body-exists-false-null",
        "exists",
        '{"a": [{"exists": false}]}',
        True,
        body='{"a": null}',
        source="own",
    ),
    Case(
        "body-or-nested",
        "$or",
        '{"detail": {"$or": [{"c": [{"numeric": [">", 0, "<=", 5]}]},'
        ' {"d": [{"numeric": ["<", 10]}]}]}}',
        True,
        body='{"detail": {"d": 3}}',
    ),
    Case(
        "body-and-nested",
        "body",
        '{"a": {"b": ["1"], "c": ["2"]}}',
        False,
        body='{"a": {"b": "1", "c": "3"}}',
    ),
    Case(
        "duplicate-key-last-wins",
        "syntax",
        '{"k": ["a"], "k": ["b"]}',
        True,
        {"k": S("b")},
        source="ruler",
    ),
    Case("empty-policy", "syntax", "{}", True, {"k": S("v")}, source="own"),
    Case("blank-policy", "syntax", "  ", True, {}, source="own"),
]

ERRORS: list[Case] = [
    Case(
        "err-nested-list",
        "syntax",
        '{"key": [["value"]]}',
        FP + "Match value must be String, number, true, false, or null",
    ),
    Case(
        "err-operator",
        "syntax",
        '{"key": [{"wrong-operator": true}]}',
        FP + "Unrecognized match type wrong-operator",
    ),
    Case(
        "err-two-operators",
        "syntax",
        '{"key": [{"suffix": "value", "prefix": "value2"}]}',
        FP + "Only one key allowed in match expression",
    ),
    Case(
        "err-suffix-number",
        "suffix",
        '{"key": [{"suffix": 100}]}',
        FP + "suffix match pattern must be a string",
    ),
    Case(
        "err-suffix-null",
        "suffix",
        '{"key": [{"suffix": null}]}',
        FP + "suffix match pattern must be a string",
    ),
    Case(
        "err-suffix-list",
        "suffix",
        '{"key": [{"suffix": ["a", "b"]}]}',
        FP + "suffix match pattern must be a string",
    ),
    Case(
        "err-not-list",
        "syntax",
        '{"key": {"suffix": "value"}}',
        FP + '"suffix" must be an object or an array',
    ),
    Case(
        "err-not-list-two-ops",
        "syntax",
        '{"key": {"suffix": "value", "prefix": "value"}}',
        FP + '"suffix" must be an object or an array',
    ),
    Case("err-nested-attrs", "syntax", '{"object": {"key": [{"prefix": "auto-"}]}}', NESTED),
    Case(
        "err-scalar-value",
        "syntax",
        '{"key_a": "value_one"}',
        FP + '"key_a" must be an object or an array',
    ),
    Case(
        "err-empty-array",
        "syntax",
        '{"key": []}',
        FP + "Empty arrays are not allowed",
        source="ruler",
    ),
    Case(
        "err-empty-expression",
        "syntax",
        '{"key": [{}]}',
        FP + "Match expression name not found",
        source="ruler",
    ),
    Case("err-json", "syntax", '{"key": ["a"', FP + "failed to parse JSON."),
    Case("err-not-object", "syntax", '["a"]', FP + "Filter is not an object", source="ruler"),
    Case(
        "err-numeric-empty",
        "num-range",
        '{"key": [{"numeric": []}]}',
        FP + "Invalid member in numeric match: ]",
    ),
    Case(
        "err-numeric-op",
        "num-range",
        '{"key": [{"numeric": ["operator"]}]}',
        FP + "Unrecognized numeric range operator: operator",
    ),
    Case(
        "err-numeric-order",
        "num-range",
        '{"key": [{"numeric": [1, "<="]}]}',
        FP + "Invalid member in numeric match: 1",
    ),
    Case(
        "err-numeric-type",
        "num-exact",
        '{"key": [{"numeric": ["=", "000"]}]}',
        FP + "Value of equals must be numeric",
    ),
    Case(
        "err-numeric-missing",
        "num-range",
        '{"key": [{"numeric": [">="]}]}',
        FP + "Value of >= must be numeric",
    ),
    Case(
        "err-numeric-range-order",
        "num-range",
        '{"key": [{"numeric": ["<", 100, ">", 10]}]}',
        FP + "Too many elements in numeric expression",
    ),
    Case(
        "err-numeric-range-ops",
        "num-range",
        '{"key": [{"numeric": [">=", 1, ">", 2]}]}',
        FP + "Bad numeric range operator: >",
    ),
    Case(
        "err-bottom-top",
        "num-range",
        '{"key": [{"numeric": [">", 3, "<", 1]}]}',
        FP + "Bottom must be less than top",
    ),
    Case(
        "err-range-missing",
        "num-range",
        '{"key": [{"numeric": [">", 20, "<="]}]}',
        FP + "Value of <= must be numeric",
    ),
    Case(
        "err-range-no-op",
        "num-range",
        '{"key": [{"numeric": [">", 20, 30]}]}',
        FP + "Bad value in numeric range: 30",
    ),
    Case(
        "err-range-bad-op",
        "num-range",
        '{"key": [{"numeric": [">", 20, "test"]}]}',
        FP + "Bad numeric range operator: test",
    ),
    Case(
        "err-range-str-1",
        "num-range",
        '{"key": [{"numeric": [">", "20", "<", "30"]}]}',
        FP + "Value of > must be numeric",
    ),
    Case(
        "err-range-str-2",
        "num-range",
        '{"key": [{"numeric": [">", 20, "<", "30"]}]}',
        FP + "Value of < must be numeric",
    ),
    Case(
        "err-range-too-many",
        "num-range",
        '{"key": [{"numeric": [">", 20, "<", 30, "<", 50]}]}',
        FP + "Too many terms in numeric range expression",
    ),
    Case(
        "err-numeric-not-array",
        "num-range",
        '{"key": [{"numeric": 5}]}',
        FP + "Value of numeric must be an array.",
        source="ruler",
    ),
    Case(
        "err-numeric-out-of-range",
        "limits",
        '{"key": [{"numeric": [">", 1000000001]}]}',
        FP + "Numeric value 1000000001 is out of range; it must be between -1e9 and 1e9",
        source="own",
    ),
    Case(
        "err-exists-null",
        "exists",
        '{"key": [{"exists": null}]}',
        FP + "exists match pattern must be either true or false.",
    ),
    Case(
        "err-exists-string",
        "exists",
        '{"key": [{"exists": "no"}]}',
        FP + "exists match pattern must be either true or false.",
    ),
    Case(
        "err-ab-operator",
        "anything-but",
        '{"key": [{"anything-but": {"wrong-operator": null}}]}',
        FP + "Unsupported anything-but pattern: wrong-operator",
    ),
    Case(
        "err-ab-exists",
        "anything-but",
        '{"key": [{"anything-but": {"exists": false}}]}',
        FP + "Unsupported anything-but pattern: exists",
    ),
    Case(
        "err-ab-prefix-type",
        "ab-prefix",
        '{"key": [{"anything-but": {"prefix": false}}]}',
        FP + "prefix match pattern must be a string",
    ),
    Case(
        "err-ab-mixed",
        "anything-but",
        '{"key": [{"anything-but": ["a", 1]}]}',
        FP + "Inside anything but list, either all values are number or string, "
        "mixed type is not supported",
        source="ruler",
    ),
    Case(
        "err-ab-null-in-list",
        "anything-but",
        '{"key": [{"anything-but": ["a", null]}]}',
        FP + "Inside anything but list, start|null|boolean is not supported.",
        source="ruler",
    ),
    Case(
        "err-ab-bool",
        "anything-but",
        '{"key": [{"anything-but": true}]}',
        FP + "Value of anything-but must be an array or single string/number value.",
        source="ruler",
    ),
    Case(
        "err-ignore-case-type",
        "ignore-case",
        '{"k": [{"equals-ignore-case": 1}]}',
        FP + "equals-ignore-case match pattern must be a string",
        source="ruler",
    ),
    Case(
        "err-cidr-type",
        "cidr",
        '{"ip": [{"cidr": 10}]}',
        FP + "prefix match pattern must be a string",
        source="ruler",
    ),
    Case(
        "err-cidr-slash",
        "cidr",
        '{"ip": [{"cidr": "10.0.0.0"}]}',
        FP + "Malformed CIDR, one '/' required",
        source="ruler",
    ),
    Case(
        "err-cidr-mask",
        "cidr",
        '{"ip": [{"cidr": "10.0.0.0/x"}]}',
        FP + "Malformed CIDR, mask bits must be an integer",
        source="ruler",
    ),
    Case(
        "err-cidr-ip",
        "cidr",
        '{"ip": [{"cidr": "10.0.0.300/8"}]}',
        FP + "Nonstandard IP address: 10.0.0.300",
        source="ruler",
    ),
    Case(
        "err-cidr-v4-32",
        "cidr",
        '{"ip": [{"cidr": "10.0.0.1/32"}]}',
        FP + "IPv4 mask bits must be < 32",
        source="ruler",
    ),
    Case(
        "err-cidr-v6-128",
        "cidr",
        '{"ip": [{"cidr": "::1/128"}]}',
        FP + "IPv6 mask bits must be < 128",
        source="ruler",
    ),
    Case(
        "err-or-reserved-is-key",
        "$or",
        '{"$or": [{"numeric": 123}, {"prefix": "abc"}]}',
        FP + "Value of numeric must be an array.",
        source="ruler",
    ),
    Case(
        "err-six-keys",
        "limits",
        '{"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]}',
        FP + "Filter policy can not have more than 5 keys",
    ),
    Case(
        "err-six-keys-in-or",
        "limits",
        '{"a": ["1"], "b": ["1"], "c": ["1"], "$or": [{"d": ["1"]}, {"e": ["1"], "f": ["1"]}]}',
        FP + "Filter policy can not have more than 5 keys",
        source="own",
    ),
    Case(
        "err-complex-one-key",
        "limits",
        '{"k": [' + ", ".join(f'"v{i}"' for i in range(151)) + "]}",
        FP + "Filter policy is too complex",
    ),
    Case(
        "err-complex-two-keys",
        "limits",
        '{"a": ['
        + ", ".join(f'"v{i}"' for i in range(13))
        + '], "b": ['
        + ", ".join(f'"v{i}"' for i in range(12))
        + "]}",
        FP + "Filter policy is too complex",
    ),
    Case(
        "err-complex-or",
        "limits",
        '{"$or": [{"a": ['
        + ", ".join(f'"v{i}"' for i in range(76))
        + ']}, {"b": ['
        + ", ".join(f'"v{i}"' for i in range(75))
        + "]}]}",
        FP + "Filter policy is too complex",
    ),
    Case(
        "err-complex-nested-depth",
        "limits",
        # (26 values x depth 3) x (3 values x depth 2) = 468 > 150 (AWS's depth rule)
        '{"a": {"b": {"c": ['
        + ", ".join(f'"v{i}"' for i in range(26))
        + ']}}, "d": {"e": ["1", "2", "3"]}}',
        FP + "Filter policy is too complex",
        body="{}",
    ),
    Case(
        "err-body-empty-object",
        "body",
        '{"a": {}}',
        FP + "Empty objects are not allowed",
        body="{}",
        source="ruler",
    ),
    Case(
        "err-body-six-top-keys",
        "limits",
        '{"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": {"g": ["1"]}}',
        FP + "Filter policy can not have more than 5 keys",
        body="{}",
    ),
    Case(
        "err-too-long",
        "limits",
        '{"k": ["' + "x" * (256 * 1024) + '"]}',
        FP + "Filter policy is too long; it must be at most 256 KB",
        source="own",
    ),
]

# Policies AWS accepts right at a limit (compile must not raise; the verdict is checked).
AT_LIMITS: list[Case] = [
    Case(
        "limit-150",
        "limits",
        '{"k": [' + ", ".join(f'"v{i}"' for i in range(150)) + "]}",
        True,
        {"k": S("v149")},
    ),
    Case(
        "limit-five-keys",
        "limits",
        '{"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"]}',
        True,
        {"a": S("1"), "b": S("1"), "c": S("1"), "d": S("1"), "e": S("1")},
    ),
    Case(
        "limit-body-nested-keys-not-counted",
        "limits",
        '{"state": ["SUCCESS"], "severity": [{"exists": true}], "message": [{"exists": true}],'
        ' "finding": {"standard_control": [{"exists": true}], "region": [{"exists": true}],'
        ' "account": [{"exists": true}]}}',
        True,
        body='{"state": "SUCCESS", "severity": 1, "message": "m",'
        ' "finding": {"standard_control": "x", "region": "r", "account": "a"}}',
    ),
    Case(
        "limit-nested-72",
        "limits",
        # AWS's worked example: (4 values x depth 3) x (3 values x depth 2) = 72
        '{"key_a": {"key_b": {"key_c": ["value_one", "value_two", "value_three", "value_four"]}},'
        ' "key_d": {"key_e": ["value_one", "value_two", "value_three"]}}',
        True,
        body='{"key_a": {"key_b": {"key_c": "value_four"}}, "key_d": {"key_e": "value_one"}}',
    ),
    Case(
        "limit-numeric-edge",
        "limits",
        '{"p": [{"numeric": ["<=", 1000000000]}]}',
        True,
        {"p": N("1e9")},
    ),
]

ALL: list[Case] = MATCHES + ERRORS + AT_LIMITS
