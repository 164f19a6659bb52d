from __future__ import annotations

import pytest

from trainers.atomic import write_atomically


def test_new_content_replaces_old(tmp_path):
    target = tmp_path / "model.json"
    target.write_text("old")
    write_atomically(target, lambda file: file.write(b"new"))

    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_a_crash_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.json"
    target.write_text("old")

    def crash(file):
        file.write(b"half of the ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, crash)

    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]
