"""Choosing between a compiled module and its pure-Python source (issue 15).

setup.py compiles `_codec.py` and `_mapping.py` with Cython into `_codec_c` and
`_mapping_c` where a C compiler and Python's headers are present; the pure modules are
the same source run by the interpreter, so both behave alike by construction (and
tests/codec proves it on random input). `ZONEMQ_NO_EXTENSIONS=1` (any non-empty value
but "0") forces the pure modules, as aiohttp's AIOHTTP_NO_EXTENSIONS does.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
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
            module = importlib.import_module(compiled)
        except ImportError as exc:
            # Not built (no compiler at install time) or built for another interpreter.
            reason = f"{compiled} not importable: {exc}"
        else:
            stale = _stale(module, pure)
            if stale is None:
                return module, True
            reason = stale
    return importlib.import_module(pure), False


def source_digest(path: str) -> str:
    """The digest setup.py records next to an extension for the source it compiled."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _stale(module: ModuleType, pure: str) -> str | None:
    """Why `module` must not be used: it was compiled from another version of `pure`'s
    source (edited since the build, e.g. in a checkout). None: the same source, or no
    record of it (an extension built by other means)."""
    record = f"{module.__file__}.sha256"
    spec = importlib.util.find_spec(pure)
    if spec is None or spec.origin is None or not os.path.exists(record):
        return None
    with open(record) as f:
        built = f.read().strip()
    if built == source_digest(spec.origin):
        return None
    name = os.path.basename(spec.origin)
    return f"{module.__name__} was built from another {name}: rebuild it"
