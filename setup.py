"""Optional compiled STOMP hot path (issue 15); everything else is in pyproject.toml.

`_codec.py` and `_mapping.py` are compiled with Cython where a C compiler and Python's
headers are present. Where the build fails (no compiler, no headers, no Cython) the
package still installs, pure Python, and says so in one warning line; at run time
protocols/stomp/_ext.py picks whichever is there. Generated C goes to build/, never
next to the sources.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCES = {
    "protocols.stomp._codec_c": "protocols/stomp/_codec.py",
    "protocols.stomp._mapping_c": "protocols/stomp/_mapping.py",
}


def _extensions() -> list[Extension]:
    if os.environ.get("ZONEMQ_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        print(f"zonemq: pure Python only (Cython not available: {exc})", file=sys.stderr)
        return []
    exts = [Extension(name, [path]) for name, path in SOURCES.items()]
    return cythonize(
        exts,
        build_dir="build/cython",
        language_level=3,
        # Same semantics as the interpreter where they differ by default.
        compiler_directives={"binding": True, "embedsignature": True},
        quiet=True,
    )


class OptionalBuildExt(build_ext):
    """build_ext that leaves the pure-Python modules in place when compiling fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any build failure means: no extension
            self._fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fallback(exc)
            return
        # Which source this was compiled from: protocols/stomp/_ext.py refuses the
        # extension once that .py differs (a checkout edited after `pip install -e`).
        digest = hashlib.sha256(Path(SOURCES[ext.name]).read_bytes()).hexdigest()
        Path(f"{self.get_ext_fullpath(ext.name)}.sha256").write_text(digest + "\n")

    def copy_extensions_to_source(self) -> None:
        """--inplace (and editable installs): the digest goes along with each extension."""
        super().copy_extensions_to_source()
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            inplace_file, regular_file = self._get_inplace_equivalent(build_py, ext)
            record = Path(f"{regular_file}.sha256")
            if record.exists():
                Path(f"{inplace_file}.sha256").write_bytes(record.read_bytes())

    @staticmethod
    def _fallback(exc: BaseException) -> None:
        print(
            f"zonemq: pure Python only (compiling the STOMP extensions failed: {exc})",
            file=sys.stderr,
        )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
