"""`make lint`'s structure check (issue 12's rules, kept): no module of `chalicelib/` or
`runner_container/` over 400 lines, no function over cyclomatic complexity 12, every file
at radon maintainability A or B, and SQL (`.execute(`) only in `repositories/` and `db/`.

    .venv/bin/python -m devstack.structure      # prints what breaks a rule; exit 1 if anything does
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from radon.complexity import cc_visit
from radon.metrics import mi_rank, mi_visit

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chalicelib", "runner_container")
MAX_LINES = 400
MAX_COMPLEXITY = 12
SQL_HOMES = ("repositories", "db")
_EXECUTE = re.compile(r"\.execute\(")


def problems(root: Path = ROOT) -> list[str]:
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found += _file_problems(path, path.relative_to(root))
    return found


def _file_problems(path: Path, name: Path) -> list[str]:
    source = path.read_text()
    found = []
    lines = len(source.splitlines())
    if lines > MAX_LINES:
        found.append(f"{name}: {lines} lines (at most {MAX_LINES}: split it by responsibility)")
    for block in cc_visit(source):
        for function in [block, *getattr(block, "methods", [])]:
            if function.complexity > MAX_COMPLEXITY:
                found.append(f"{name}:{function.lineno} {function.fullname}: cyclomatic complexity "
                             f"{function.complexity} (at most {MAX_COMPLEXITY})")
    rank = mi_rank(mi_visit(source, multi=True))
    if rank not in ("A", "B"):
        found.append(f"{name}: maintainability index rank {rank} (A or B)")
    if not set(name.parts) & set(SQL_HOMES) and _EXECUTE.search(source):
        found.append(f"{name}: SQL outside chalicelib/repositories and chalicelib/db")
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
