"""run/stack.json validation: every bad content is one StateFileError naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosctl.errors import ExitCode, StateFileError
from chaosctl.runtime.procs import RunDir
from chaosctl.runtime.state import MAX_REPLICAS, load_state, parse_state

PATH = Path("/state/run/stack.json")


@pytest.mark.parametrize(("raw", "names"), [
    (b'{"replicas": {"gateway": 100000}}', ["replicas.gateway", "16", "100000"]),
    (b'{"replicas": {"gateway": 0}}', ["replicas.gateway", "0"]),
    (b"[]", ["JSON object", "list"]),
    (b'{"replicas": "x"}', ["replicas", '"x"']),
    (b'{"replicas": {"orders": 2.5}}', ["replicas.orders", "integer"]),
    (b'{"replicas": {"orders": "3"}}', ["replicas.orders", "integer"]),
    (b'{"replicas": {"orders": true}}', ["replicas.orders", "integer"]),
    (b'{"replicas": {"redis": 2}}', ["replicas", "'redis'", "gateway"]),
    (b'{"killed": ["nosuch"]}', ["killed", "'nosuch'"]),
    (b'{"replicas": {}, "extra": 1}', ["extra"]),
    (b'{"replicas": {', ["not valid JSON"]),
    (b"", ["not valid JSON"]),
    (b'\xff\xfe{"replicas": {}}', ["not UTF-8"]),
])
def test_bad_state_names_file_field_and_fix(raw: bytes, names: list[str]) -> None:
    with pytest.raises(StateFileError) as info:
        parse_state(raw, PATH)
    text = str(info.value)
    assert info.value.exit_code == ExitCode.USAGE
    assert "\n" not in text and str(PATH) in text and "chaosctl stack scale" in text
    for name in names:
        assert name in text, (name, text)


def test_good_state_and_missing_file(tmp_path: Path) -> None:
    raw = b'{"replicas": {"orders": 3, "gateway": 16}, "killed": ["payments", "redis"]}'
    assert parse_state(raw, PATH) == {"replicas": {"orders": 3, "gateway": MAX_REPLICAS},
                                      "killed": ["payments", "redis"]}
    assert load_state(tmp_path / "nope.json") == {"replicas": {}, "killed": []}


def test_run_dir_refuses_a_bad_state_file(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    (tmp_path / "stack.json").write_text('{"replicas": {"gateway": 100000}}')
    with pytest.raises(StateFileError, match="replicas.gateway"):
        run.load_state()
