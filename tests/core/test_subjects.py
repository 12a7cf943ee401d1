"""The subject trie (broker/core/subjects.py): ActiveMQ's wildcard rules, both directions."""

from __future__ import annotations

import random

import pytest

from broker.core.subjects import SubjectTrie, is_wildcard, matches

# (pattern, name, matches?) as ActiveMQ 5.17 routes them over STOMP (compared with the
# shared ActiveMQ 5.17.2: a subscriber of `a.>` gets a message sent to `a`; `a*` is a
# literal; a ">" that is not last matches nothing).
CASES = [
    ("a.*", "a.b", True),
    ("a.*", "a.b.c", False),
    ("a.*", "a", False),
    ("a.*", "a.", True),
    ("a.>", "a", True),
    ("a.>", "a.b.c", True),
    ("a.>", "b.a", False),
    (">", "anything.at.all", True),
    ("*.b", "a.b", True),
    ("*.b", "a.c", False),
    ("a.*.c", "a.x.c", True),
    ("a.*.c", "a.x.y.c", False),
    ("a.>.c", "a.x.c", False),
    ("a*", "ab", False),
    ("a*", "a*", True),
    ("a.b", "a.b", True),
    ("a.b", "a.bc", False),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), CASES)
def test_matching_finds_stored_patterns(pattern: str, name: str, expected: bool) -> None:
    trie: SubjectTrie[str] = SubjectTrie()
    trie.add(pattern, "v")
    assert (trie.matching(name) == ["v"]) is expected
    assert matches(pattern, name) is expected


@pytest.mark.parametrize(("pattern", "name", "expected"), [c for c in CASES if "*" not in c[1]])
def test_matched_by_finds_stored_names(pattern: str, name: str, expected: bool) -> None:
    trie: SubjectTrie[str] = SubjectTrie()
    trie.add(name, "v")
    assert (trie.matched_by(pattern) == ["v"]) is expected


def test_is_wildcard() -> None:
    assert is_wildcard("a.*") and is_wildcard("a.>") and is_wildcard("*")
    assert not is_wildcard("a*") and not is_wildcard("a.b") and not is_wildcard("x>y")


def test_remove_prunes_and_keeps_others() -> None:
    trie: SubjectTrie[str] = SubjectTrie()
    trie.add("a.*", "one")
    trie.add("a.*", "two")
    trie.add("a.b.>", "three")
    trie.remove("a.*", "one")
    trie.remove("a.*", "missing")
    trie.remove("no.such.key", "one")
    assert sorted(trie.matching("a.b")) == ["three", "two"]
    trie.remove("a.*", "two")
    trie.remove("a.b.>", "three")
    assert trie.matching("a.b") == [] and trie.size == 0
    assert trie._root.children == {}


def test_a_value_under_two_matching_patterns_comes_once() -> None:
    trie: SubjectTrie[str] = SubjectTrie()
    trie.add("a.*", "v")
    trie.add("a.>", "v")
    trie.add("*.b", "v")
    assert trie.matching("a.b") == ["v"]


def test_random_patterns_agree_with_the_plain_rule() -> None:
    """The trie against `matches` over random names and patterns, both directions."""
    rng = random.Random(7)
    words = ["a", "b", "c", ""]

    def name() -> str:
        return ".".join(rng.choice(words) for _ in range(rng.randint(1, 4)))

    def pattern() -> str:
        segs = [rng.choice([*words, "*", "*"]) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            segs.append(">")
        return ".".join(segs)

    patterns = sorted({pattern() for _ in range(300)})
    names = sorted({name() for _ in range(300)})
    by_pattern: SubjectTrie[str] = SubjectTrie()
    by_name: SubjectTrie[str] = SubjectTrie()
    for p in patterns:
        by_pattern.add(p, p)
    for n in names:
        by_name.add(n, n)
    for n in names:
        assert sorted(by_pattern.matching(n)) == [p for p in patterns if matches(p, n)]
    for p in patterns:
        assert sorted(by_name.matched_by(p)) == [n for n in names if matches(p, n)]


def test_matched_by_keeps_the_order_names_were_added() -> None:
    trie: SubjectTrie[str] = SubjectTrie()
    for name in ("q.b", "q.a", "q.c.d", "q.c"):
        trie.add(name, name)
    assert trie.matched_by("q.*") == ["q.b", "q.a", "q.c"]
    assert trie.matched_by("q.>") == ["q.b", "q.a", "q.c", "q.c.d"]
