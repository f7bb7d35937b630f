"""Packaging files shipped in the repository stay valid: the systemd units pass
`systemd-analyze verify` and start the binaries this build produced, with a config file
argument the binary accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness import default_inboxd_bin, default_outboxd_bin

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "contrib" / "systemd"


@pytest.mark.parametrize("name", ["outboxd", "inboxd"])
def test_systemd_unit_verifies(name, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    binary = default_outboxd_bin() if name == "outboxd" else default_inboxd_bin()
    text = (UNITS / f"{name}.service").read_text()
    assert f"ExecStart=/usr/local/bin/{name} -c /etc/{name}/{name}.conf" in text
    assert "RestartPreventExitStatus=2" in text  # exit 2 = configuration error, see docs/configuration.md
    assert "Type=notify" in text and "NotifyAccess=main" in text  # sd_notify READY=1 (test_ops.py checks it)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text  # SIGHUP re-reads log.level
    unit = tmp_path / f"{name}.service"
    unit.write_text(text.replace(f"/usr/local/bin/{name}", str(binary)))
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # verify exits 0 on values it ignores ("Failed to parse ..., ignoring"): any diagnostic
    # about the unit file is a failure.
    diagnostics = [ln for ln in (r.stdout + r.stderr).splitlines() if unit.name in ln]
    assert not diagnostics, diagnostics
    # The binary accepts the unit's command line shape (-c FILE) and --help/--version.
    r = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith(name), r
