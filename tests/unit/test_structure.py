"""Issue 12's structure rules stay true (devstack/structure.py, run by `make lint`)."""
from __future__ import annotations

from pathlib import Path

from devstack.structure import problems


def test_the_code_keeps_the_rules():
    assert problems() == []


def test_each_rule_is_enforced(tmp_path: Path):
    package = tmp_path / "chalicelib" / "services"
    package.mkdir(parents=True)
    (tmp_path / "runner_container").mkdir()
    (package / "long.py").write_text("x = 1\n" * 401)
    branches = "".join(f"    if a == {n}:\n        return {n}\n" for n in range(13))
    (package / "branchy.py").write_text(f"def f(a):\n{branches}    return -1\n")
    (package / "sql.py").write_text("def f(conn):\n    conn.execute('SELECT 1')\n")
    (tmp_path / "chalicelib" / "repositories").mkdir()
    (tmp_path / "chalicelib" / "repositories" / "ok.py").write_text("def f(conn):\n    conn.execute('SELECT 1')\n")
    found = "\n".join(problems(tmp_path))
    assert "chalicelib/services/long.py: 401 lines" in found
    assert "chalicelib/services/branchy.py:1 f: cyclomatic complexity 14" in found
    assert "chalicelib/services/sql.py: SQL outside" in found
    assert "repositories/ok.py" not in found
