"""The DuckDB sandbox's settings: one object, validated, read once at the egress entry point."""

import pytest
from traitlets import TraitError

from egress.app import EgressApp
from egress.sandbox import SandboxSettings


@pytest.mark.parametrize("field, value, message", [
    ("memory_limit", "lots", "memory_limit 'lots' is not a size"),
    ("memory_limit", "512", "memory_limit '512' is not a size"),
    ("max_spill", "1TB; SET x = 1", "max_spill"),
    ("threads", -1, "threads must be 0"),
    ("timeout_seconds", 0, "timeout_seconds must be positive"),
    ("max_open_extracts", 0, "max_open_extracts must be at least 1"),
])
def test_bad_settings_are_refused_naming_the_setting(field, value, message):
    with pytest.raises(ValueError, match=message):
        SandboxSettings(**{field: value})


@pytest.mark.parametrize("size", ["512MB", "2GB", "1.5GiB", "64 MB"])
def test_duckdb_sizes_are_accepted(size):
    assert SandboxSettings(memory_limit=size, max_spill=size).memory_limit == size


def test_the_egress_app_builds_the_sandbox_settings_from_its_traits(tmp_path):
    app = EgressApp()
    app.initialize(["--EgressApp.sandbox_memory_limit=256MB", "--EgressApp.sandbox_threads=1",
                    f"--EgressApp.sandbox_temp_dir={tmp_path}", "--EgressApp.sandbox_timeout_seconds=5"])
    assert app.sandbox_settings() == SandboxSettings(memory_limit="256MB", threads=1, timeout_seconds=5,
                                                     temp_dir=str(tmp_path))
    with pytest.raises(TraitError, match="sandbox_memory_limit 'lots'"):
        app.sandbox_memory_limit = "lots"
    app.sandbox_max_open_extracts = 0
    with pytest.raises(TraitError, match="max_open_extracts must be at least 1"):
        app.sandbox_settings()
