"""Core refusals: every CoreError the core raises carries a CoreCode."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from broker.core import (
    QUEUE,
    TEMP_QUEUE,
    TEMP_TOPIC,
    TOPIC,
    Address,
    Core,
    CoreCode,
    CoreError,
)
from broker.core import errors as core_errors
from tests.core.fakes import RecordingConsumer

CORE_DIR = Path(core_errors.__file__).parent


def test_every_core_error_raised_uses_a_core_code() -> None:
    names = {c.name for c in CoreCode}
    raises = 0
    for path in sorted(CORE_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CoreError":
                raises += 1
                code = node.args[0] if node.args else None
                ok = (isinstance(code, ast.Name) and code.id in names) or (
                    isinstance(code, ast.Attribute)
                    and getattr(code.value, "id", None) == "CoreCode"
                    and code.attr in names
                )
                assert ok, f"{path.name}:{node.lineno}: CoreError without a CoreCode"
    assert raises >= 10


def test_codes_are_the_stable_strings() -> None:
    assert {c.value for c in CoreCode} == {"not-found", "invalid", "deleted", "store-full"}
    assert core_errors.NOT_FOUND == "not-found"
    assert {"invalid": 1}.get(CoreCode.INVALID) == 1


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda core: core.queue(Address(QUEUE, "x"), create=False), CoreCode.NOT_FOUND),
        (lambda core: core.topic(Address(TOPIC, "x"), create=False), CoreCode.NOT_FOUND),
        (lambda core: core.queue(Address(TEMP_QUEUE, "gone")), CoreCode.DELETED),
        (lambda core: core.topic(Address(TEMP_TOPIC, "gone")), CoreCode.DELETED),
        (lambda core: core.queue(Address(QUEUE, "")), CoreCode.INVALID),
        (lambda core: core.queue(Address("bogus", "x")), CoreCode.INVALID),
        (lambda core: core.create_temporary(Address(QUEUE, "x"), object()), CoreCode.INVALID),
        (
            lambda core: core.subscribe(Address(QUEUE, "x"), RecordingConsumer(), ack_mode="?"),
            CoreCode.INVALID,
        ),
        (
            lambda core: core.subscribe(Address(QUEUE, "x"), RecordingConsumer(), prefetch=0),
            CoreCode.INVALID,
        ),
    ],
)
def test_refusals_carry_their_code(core: Core, call: object, code: CoreCode) -> None:
    with pytest.raises(CoreError) as err:
        call(core)  # type: ignore[operator]
    assert err.value.code is code and err.value.message
