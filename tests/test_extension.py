"""The compiled extension: present when it must be, and the fallback warns exactly once when it is absent."""
from __future__ import annotations

import os

import pytest

from simlabel_ext import _extension


def test_extension_is_built_where_required():
    if os.environ.get("SIMLABEL_REQUIRE_EXTENSION") != "1":
        pytest.skip("SIMLABEL_REQUIRE_EXTENSION is not set (CI sets it: there the C++ path must be tested)")
    assert _extension.has_compiled(), "simlabel_ext._C failed to import; the C++ tests would silently fall back"


def test_missing_extension_warns_once_with_build_command(monkeypatch):
    monkeypatch.setattr(_extension, "_compiled", None)
    monkeypatch.setattr(_extension, "_IMPORT_ERROR", ImportError("No module named 'simlabel_ext._C'"))
    monkeypatch.setattr(_extension, "_warned", False)
    with pytest.warns(RuntimeWarning, match=r"pip install --no-build-isolation"):
        assert _extension.compiled() is None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _extension.compiled() is None  # second call: no second warning
