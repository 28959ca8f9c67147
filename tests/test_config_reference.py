"""docs/configuration.md is generated from the code and up to date: every pylog-server
setting (flag, environment name, TOML key, default) and every topic config appears, and
``pylog-server --help`` shows the same names."""
from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

from pylog.config import TOPIC_CONFIG_SPECS
from pylog.server.reference import config_reference
from pylog.server.settings import SETTINGS, ServerConfig, default_text, env_name, flag_name

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_docs_configuration_md_is_up_to_date():
    assert DOC.read_text() == config_reference(), (
        "docs/configuration.md is stale: run "
        "pylog-server --print-config-reference > docs/configuration.md")


def test_every_setting_and_topic_config_is_in_the_reference():
    text = DOC.read_text()
    assert set(SETTINGS) == {f.name for f in fields(ServerConfig)}
    for name in SETTINGS:
        row = next(ln for ln in text.splitlines() if f"`{flag_name(name)}" in ln)
        assert f"`{env_name(name)}`" in row and f"`{name}`" in row
        assert default_text(name) in row
    for spec in TOPIC_CONFIG_SPECS:
        assert f"| `{spec.name}` |" in text


def test_help_shows_env_toml_and_default_for_every_flag():
    import os
    out = subprocess.run([sys.executable, "-m", "pylog.server.main", "--help"],
                         capture_output=True, text=True, timeout=30,
                         env={**os.environ, "COLUMNS": "400"})
    assert out.returncode == 0
    text = " ".join(out.stdout.split()).split(" options: ", 1)[1]
    for name in SETTINGS:
        block = re.split(rf" {flag_name(name)}[ ,]", text, maxsplit=1)[1]
        block = re.split(r" --[a-z-]+ [A-Z]", block, maxsplit=1)[0]
        assert f"[env {env_name(name)}, TOML {name}, default: {default_text(name)}]" in block
    assert "Exit codes" in out.stdout


def test_print_config_reference_prints_the_file():
    out = subprocess.run([sys.executable, "-m", "pylog.server.main",
                          "--print-config-reference"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and out.stdout == DOC.read_text()
