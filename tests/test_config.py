"""Configuration errors name the key, the line and what is allowed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from conftest import run_cli
from praxisbackup.model import config as schema
from praxisbackup.model.config import ConfigError, parse_config
from praxisbackup.model.example import example_toml, json_schema

BASE = """\
[practice]
name = "Praxis Dr. Muster"

[[sources]]
label = "M1"
path = "/srv/CompuMED"
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "praxis.toml")
    return str(info.value)


def test_example_config_is_generated_valid_and_documents_every_key() -> None:
    text = example_toml()
    config = parse_config(text)
    assert config.practice.language == "de"
    assert config.sources[0].label == "CGM M1 PRO"
    assert config.services[1].check_closed == ["C:\\CompuMED\\M1\\Orant\\DB_M1\\Database"]
    assert config.rotation is not None and len(config.rotation.daily) == 5
    # Every key of every section appears, active or as a commented line, with its comment.
    uncommented = "\n".join(line.lstrip("# ") for line in text.splitlines())
    for model in (getattr(schema, n) for n in dir(schema)):
        if isinstance(model, type) and issubclass(model, BaseModel) and model is not BaseModel:
            for name, field in model.model_fields.items():
                if field.exclude is True:
                    continue
                assert (
                    f"\n{name} = " in uncommented
                    or f"[{name}]" in uncommented
                    or (f".{name}]" in uncommented)
                ), f"{model.__name__}.{name} missing from the example"
                if field.description and model.__name__ != "Config":
                    first_words = " ".join(field.description.split()[:4])
                    assert first_words in " ".join(uncommented.split()), (model, name)
    # Uncommenting the commented hook and SMTP sections still gives a valid configuration.
    full = "\n".join(
        line[2:] if re.match(r"# (\[|[a-z_]+ = )", line) else line for line in text.splitlines()
    )
    doc = tomllib.loads(full)
    assert doc["hooks"][0]["name"] == "NAS aufwecken" and doc["notify"]["smtp"]["port"] == 587


def test_published_json_schema_is_current() -> None:
    published = Path(__file__).parent.parent / "docs" / "config.schema.json"
    assert published.read_text(encoding="utf-8") == json_schema(), (
        "docs/config.schema.json is stale: praxisbackup config schema > docs/config.schema.json"
    )


def test_wrong_value_names_line_key_and_allowed_values() -> None:
    msg = error_of(BASE + 'mode = "everything"\n')
    assert "praxis.toml, line 7, key 'sources[0].mode'" in msg
    assert "'full' or 'minimal'" in msg


def test_unknown_key_is_named_with_its_line() -> None:
    msg = error_of(BASE + "\n[media]\ncandidate = ['E:']\n")
    assert "line 9, key 'media.candidate'" in msg and "Extra inputs are not permitted" in msg


def test_second_source_error_points_to_the_second_table() -> None:
    msg = error_of(BASE + '\n[[sources]]\nlabel = "Archiv"\npath = 5\n')
    assert "line 10, key 'sources[1].path'" in msg and "valid string" in msg


def test_command_service_needs_its_commands_and_schedule_format() -> None:
    msg = error_of(BASE + '\n[[services]]\nname = "db"\nkind = "command"\nstop = "x"\n')
    assert "line 8, key 'services[0]'" in msg and "needs 'stop', 'start' and 'is_running'" in msg
    msg = error_of(BASE + '\n[schedule]\nat = "25:00"\n')
    assert "line 9, key 'schedule.at'" in msg and "HH:MM" in msg


def test_missing_sections_and_toml_syntax() -> None:
    assert "key 'sources': Field required" in error_of('[practice]\nname = "x"\n')
    assert "not valid TOML" in error_of("[practice\nname=1")


def test_cli_reports_config_errors_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "praxis.toml"
    cfg.write_text(BASE + "\n[verify]\nlevel = 'sometimes'\n")
    out = run_cli("-c", str(cfg), "config", "check")
    assert out.returncode == 2
    assert "line 9, key 'verify.level'" in out.stderr and "Traceback" not in out.stderr
    missing = run_cli("-c", str(tmp_path / "nope.toml"), "run")
    assert missing.returncode == 2 and "keine Konfiguration unter" in missing.stderr
    example = run_cli("config", "example")
    assert example.returncode == 0 and parse_config(example.stdout).practice.name
