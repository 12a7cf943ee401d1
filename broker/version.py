"""The broker's version: the installed distribution's (pyproject), for `zonemq --version`,
the admin API and its OpenAPI document."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def broker_version() -> str:
    try:
        return version("zonemq")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"
