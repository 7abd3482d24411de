"""One way to write sizes: small amounts never read as zero, units step at 1024."""

from __future__ import annotations

import pytest

from engine.util import files, units


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (7987, "7.8 KiB"),
        (3 * 2**20, "3.0 MiB"),  # was "0.00 GiB" in the free-space message
        (350 * 2**20, "350 MiB"),
        (1024 * 2**20 - 1, "1.0 GiB"),
        (int(75.1 * 2**30), "75.1 GiB"),
        (120 * 2**30, "120 GiB"),
        (5 * 2**40, "5.0 TiB"),
        (-2048, "-2.0 KiB"),
        (None, "?"),
    ],
)
def test_format_size(n, text):
    assert units.format_size(n) == text


def test_format_duration():
    assert [units.format_duration(s) for s in (45, 720, 3 * 3600 + 300)] == ["45 s", "12 min", "3 h 05 min"]


def test_one_formatter_everywhere():
    """The copies that used to exist (files, models.info, diagnostics) all go through units."""
    from engine.models import info
    from engine.util import diagnostics

    assert files.format_size is units.format_size
    assert not hasattr(info, "format_gib")
    assert (
        diagnostics.device_summary(
            {"cuda_available": True, "gpus": [{"name": "GPU", "free_bytes": 3 * 2**20}]}
        )
        == "GPU · 3.0 MiB free"
    )
