"""Local stack tooling: runs zemeow on one machine with nothing but Python.

Not part of any deployed artefact: the Lambda package holds `app.py` + `chalicelib`,
the runner image holds `chalicelib` + `runner_container`.
"""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
