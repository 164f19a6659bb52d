"""`archsearch validate` on a corpus of malformed specs: one line on stderr, exit 2, no files.

The corpus lives in malformed_specs.yaml beside this file; each entry says what the one-line
message must match. A subprocess test checks the same through a real interpreter.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster.cli import main

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
CORPUS = yaml.safe_load((HERE / "malformed_specs.yaml").read_text(encoding="utf-8"))


def _spec_text(case: dict) -> str:
    if "text" in case:
        return case["text"]
    return yaml.safe_dump(case["spec"], sort_keys=False, allow_unicode=True)


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_corpus_is_well_formed():
    ids = [case["id"] for case in CORPUS]

    assert len(CORPUS) >= 50
    assert len(set(ids)) == len(ids), "ids must be unique"
    for case in CORPUS:
        assert set(case) in ({"id", "spec", "message"}, {"id", "text", "message"}), case["id"]
        re.compile(case["message"])


@pytest.mark.parametrize("case", CORPUS, ids=[case["id"] for case in CORPUS])
def test_validate_refuses_malformed_spec(case, tmp_path, monkeypatch, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(_spec_text(case), encoding="utf-8")
    # Run from the tmp folder, so anything written relative to the working directory shows up.
    monkeypatch.chdir(tmp_path)

    code = main(["validate", str(path)])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("archsearch: ")
    message = err.removeprefix("archsearch: ").rstrip("\n")
    assert re.search(case["message"], message), f"{message!r} does not match {case['message']!r}"
    assert _files_under(tmp_path) == ["spec.yaml"]


def _console_command() -> list[str]:
    script = ROOT / ".venv" / "bin" / "archsearch"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from cluster.cli import main; raise SystemExit(main())"]


def _run_validate(spec: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_console_command(), "validate", str(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_validate_command_in_a_subprocess_accepts_a_good_spec():
    spec = ROOT / "examples" / "digits_mlp.yaml"

    result = _run_validate(spec)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{spec}: valid; random search over 11 parameters")
    assert result.stderr == ""


def test_validate_command_in_a_subprocess_refuses_a_bad_spec(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: t\ndata: {dataset: digits}\nmodel: {family: mlp, depth: 0}\n")

    result = _run_validate(spec)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "archsearch: model.depth: 0 must be >= 1\n"
