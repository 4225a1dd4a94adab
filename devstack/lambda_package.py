"""The API Lambda's deployment package, built the way `chalice deploy` builds it, and a
stand-in for the libraries the Lambda Python runtime provides. Shared by the packaging
tests (tests/infra/test_infra_package.py) and the cold-start benchmark (bench/cold_import.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from devstack import PROJECT_ROOT

PROD_QUEUE_PREFIX = "zemeow"  # the prod stage's QUEUE_PREFIX
# what the Lambda Python runtime ships besides the standard library
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def chalice_package(work: Path, *, timeout: float = 600) -> Path:
    """`chalice package --stage prod` on a copy of what the Lambda is built from (app.py,
    chalicelib, requirements.txt, the stage config) into `work/out`, which is returned."""
    project = work / "project"
    project.mkdir()
    shutil.copytree(PROJECT_ROOT / "chalicelib", project / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("app.py", "requirements.txt"):
        shutil.copy(PROJECT_ROOT / name, project / name)
    (project / ".chalice").mkdir()
    for source in (PROJECT_ROOT / ".chalice").glob("*.json"):
        shutil.copy(source, project / ".chalice" / source.name)
    out = work / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "QUEUE_PREFIX": PROD_QUEUE_PREFIX})
    result = subprocess.run([str(Path(sys.executable).parent / "chalice"), "--project-dir", str(project),
                             "package", "--stage", "prod", str(out)], env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"chalice package failed:\n{result.stdout}{result.stderr}")
    return out


def runtime_libraries(target: Path) -> Path:
    """`target`, made a directory of links to this environment's copies of what the Lambda
    runtime provides (boto3 & co), to put on sys.path beside the extracted zip."""
    import boto3

    target.mkdir()
    site = Path(boto3.__file__).resolve().parent.parent
    for name in RUNTIME_PACKAGES:
        if (site / name).exists():
            (target / name).symlink_to(site / name)
    return target
