"""The game-day report opens in headless Chromium without errors and the chart is drawn."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from chaosctl.gameday.model import Marker, ScenarioResult
from chaosctl.gameday.report import write_run
from chaosctl.gameday.timeline import FAILED, OK, RequestRecord, samples

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI installs Chromium (.ci/run); elsewhere a missing browser skips instead of failing.
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="chromium is not installed (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def _report(tmp_path: Path) -> Path:
    records = [RequestRecord(t=i * 0.1, latency_ms=20 + (i % 7) * 3,
                             outcome=FAILED if 100 <= i < 160 and i % 2 else OK)
               for i in range(300)]
    result = ScenarioResult(scenario="payment-errors", expected_playbook="payment-degradation",
                            outcome="pass", mttd_s=3.0, mttr_s=8.0, started_at=1.9e9,
                            fired_playbook="payment-degradation", right_playbook=True,
                            duplicates=0, lost_events=0, duration_s=30.0)
    result.samples = samples(records, end=30.0, breaker_open={11: 1, 12: 1})
    result.markers = [Marker(10.0, "inject", "payment-errors"), Marker(13.0, "detect", "x"),
                      Marker(13.1, "remediate", "x"), Marker(18.0, "recover", "steady")]
    return write_run(result, tmp_path)


def _chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is required in CI"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def _png_variety(path: Path) -> int:
    """Distinct byte values in the first 400 rows of a PNG: a blank page has a handful."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width = struct.unpack(">I", chunk[:4])[0]
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw[: (width * 4 + 1) * 400]))


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    page = _report(tmp_path)
    dom = _chromium("--dump-dom", page.as_uri(), tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr, dom.stderr
    html = dom.stdout
    points = re.search(r'class="success-rate"[^>]*points="([^"]+)"', html)
    assert points and len(points.group(1).split()) == 30
    assert html.count('class="breaker-open"') == 2
    assert 'class="marker marker-recover"' in html
    assert "PASS" in html and "payment-degradation" in html

    shot = tmp_path / "shot.png"
    run = _chromium(f"--screenshot={shot}", "--window-size=1000,900", page.as_uri(),
                    tmp_path=tmp_path)
    assert run.returncode == 0 and shot.is_file(), run.stderr
    assert _png_variety(shot) > 50, "the screenshot looks blank: the chart was not drawn"
