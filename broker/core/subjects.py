"""A subject trie: destination names and ActiveMQ wildcard patterns, matched by segment.

ActiveMQ's wildcards: "." separates segments, a segment "*" matches exactly one segment
and a final segment ">" matches the rest, zero or more segments (ActiveMQ 5.17 delivers
a message sent to topic `a` to a subscriber of `a.>`). A segment that merely contains
"*" (`a*`) is a literal, and a ">" that is not last matches nothing (both as ActiveMQ
5.17 over STOMP).

Both directions are answered by walking the trie, never by scanning every key:
`matching(name)` finds the values stored under keys (patterns or literal names) that a
concrete name matches, in O(segments x wildcard branches); `matched_by(pattern)` finds
the values stored under literal names that a pattern matches, visiting only the
subtrees the pattern can reach (siblings in the order they were added, so a wildcard
consumer attaches to the older of two queues first, as ActiveMQ's did when compared).
"""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")

ONE = "*"
REST = ">"


def is_wildcard(name: str) -> bool:
    """Does `name` hold a wildcard segment ("*" anywhere, ">" anywhere)?"""
    if "*" not in name and ">" not in name:
        return False
    return any(seg in (ONE, REST) for seg in name.split("."))


def matches(pattern: str, name: str) -> bool:
    """Does concrete `name` match `pattern` (by the rules above)? For one-off checks;
    routing uses a SubjectTrie."""
    pat = pattern.split(".")
    parts = name.split(".")
    for i, p in enumerate(pat):
        if p == REST:
            return i == len(pat) - 1
        if i >= len(parts) or (p != ONE and p != parts[i]):
            return False
    return len(parts) == len(pat)


class _Node(Generic[V]):
    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[V]] = {}
        self.values: list[V] = []


class SubjectTrie(Generic[V]):
    """Values under names or patterns (several values per key; a value once per key)."""

    __slots__ = ("_root", "size")

    def __init__(self) -> None:
        self._root: _Node[V] = _Node()
        self.size = 0

    def add(self, key: str, value: V) -> None:
        node = self._root
        for seg in key.split("."):
            child = node.children.get(seg)
            if child is None:
                child = node.children[seg] = _Node()
            node = child
        if value not in node.values:
            node.values.append(value)
            self.size += 1

    def remove(self, key: str, value: V) -> None:
        """Forget `value` under `key` (absent: nothing), pruning emptied branches."""
        path: list[tuple[_Node[V], str]] = []
        node = self._root
        for seg in key.split("."):
            child = node.children.get(seg)
            if child is None:
                return
            path.append((node, seg))
            node = child
        if value not in node.values:
            return
        node.values.remove(value)
        self.size -= 1
        for parent, seg in reversed(path):
            child = parent.children[seg]
            if child.values or child.children:
                break
            del parent.children[seg]

    def matching(self, name: str) -> list[V]:
        """Values whose key matches the concrete `name` (a literal key equal to it, or a
        pattern that matches it), each once, in no promised order."""
        parts = name.split(".")
        out: list[V] = []
        n = len(parts)
        stack: list[tuple[_Node[V], int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            children = node.children
            rest = children.get(REST)
            if rest is not None:
                out.extend(rest.values)  # ">" last: zero or more of what is left
            if i == n:
                out.extend(node.values)
                continue
            child = children.get(parts[i])
            if child is not None:
                stack.append((child, i + 1))
            star = children.get(ONE)
            if star is not None:
                stack.append((star, i + 1))
        if len(out) > 1:
            seen: set[int] = set()
            out = [v for v in out if not (id(v) in seen or seen.add(id(v)))]  # type: ignore[func-returns-value]
        return out

    def matched_by(self, pattern: str) -> list[V]:
        """Values under literal keys that `pattern` matches (keys that are patterns
        themselves are not expanded: they match only where a pattern segment is the same
        literal text, as a name would)."""
        pat = pattern.split(".")
        n = len(pat)
        out: list[V] = []
        stack: list[tuple[_Node[V], int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if i == n:
                out.extend(node.values)
                continue
            seg = pat[i]
            if seg == REST:
                if i == n - 1:
                    self._collect(node, out)
                continue
            if seg == ONE:
                # Reversed onto the stack: names come out in the order they were added.
                stack.extend((child, i + 1) for child in reversed(node.children.values()))
            else:
                child = node.children.get(seg)
                if child is not None:
                    stack.append((child, i + 1))
        return out

    @staticmethod
    def _collect(node: _Node[V], out: list[V]) -> None:
        stack = [node]
        while stack:
            n = stack.pop()
            out.extend(n.values)
            stack.extend(reversed(n.children.values()))
