"""Choosing between a compiled module and its pure-Python source (issue 15).

setup.py compiles `_codec.py` and `_mapping.py` with Cython into `_codec_c` and
`_mapping_c` where a C compiler and Python's headers are present; the pure modules are
the same source run by the interpreter, so both behave alike by construction (and
tests/codec proves it on random input). `ZONEMQ_NO_EXTENSIONS=1` (any non-empty value
but "0") forces the pure modules, as aiohttp's AIOHTTP_NO_EXTENSIONS does.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

# Why the compiled modules are not used, once known (None: they are, or not tried yet).
reason: str | None = None


def disabled() -> bool:
    """True when the environment asks for the pure-Python implementation."""
    return os.environ.get("ZONEMQ_NO_EXTENSIONS", "") not in ("", "0")


def load(compiled: str, pure: str) -> tuple[ModuleType, bool]:
    """The compiled module `compiled` unless disabled or not built, else `pure`;
    and whether the compiled one was taken."""
    global reason
    if disabled():
        reason = "ZONEMQ_NO_EXTENSIONS is set"
    else:
        try:
            return importlib.import_module(compiled), True
        except ImportError as exc:
            # Not built (no compiler at install time) or built for another interpreter.
            reason = f"{compiled} not importable: {exc}"
    return importlib.import_module(pure), False
