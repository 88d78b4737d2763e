"""benchmarks/_common.write_json replaces the file whole, never leaving it half written."""

from __future__ import annotations

import json

import pytest

from .conftest import load_benchmark


def test_write_json_replaces_the_file_and_leaves_no_temporary(tmp_path):
    common = load_benchmark("_common")
    path = tmp_path / "sub" / "summary.json"
    common.write_json(path, {"cuts": 1})
    common.write_json(path, {"cuts": 2})
    assert json.loads(path.read_text()) == {"cuts": 2}
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_write_json_stopped_while_writing_keeps_the_previous_file(tmp_path, monkeypatch):
    common = load_benchmark("_common")
    path = tmp_path / "summary.json"
    common.write_json(path, {"cuts": 1})
    real_write_text = type(path).write_text

    def stopped_halfway(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(type(path), "write_text", stopped_halfway)
    with pytest.raises(KeyboardInterrupt):
        common.write_json(path, {"cuts": 2, "records": list(range(100))})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"cuts": 1}
