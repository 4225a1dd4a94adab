"""Cold import time of the API Lambda's module (`import app`) against a bare
`import chalice, boto3, psycopg` (what any Chalice + PostgreSQL Lambda pays), measured in
fresh interpreters, interleaved, in the same run:

    .venv/bin/python bench/cold_import.py            # 15 rounds, the dev virtualenv
    .venv/bin/python bench/cold_import.py --rounds 30
    .venv/bin/python bench/cold_import.py --package  # from `chalice package --stage prod`'s zip

`--package` builds the Lambda zip (chalice package on a copy of the project, as
tests/infra/test_infra_package.py does), extracts it and imports from it alone plus boto3 & co
(what Lambda's runtime provides), without site-packages: what a cold Lambda imports.

Each sample is a new `python` process that times only its imports (perf_counter around
the import statement, interpreter start-up excluded). Prints the median and the minimum
of each and the ratio of the medians (target: <= 1.5x). The environment is a Lambda-like
one: AWS_LAMBDA_FUNCTION_NAME set, no AWS_ENDPOINT_URL, QUEUE_PREFIX=zemeow.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "import chalice, boto3, psycopg"
APP = "import app"
# Route models load with the first request that needs them (chalicelib/routing.py), so a
# cold Lambda's first send pays them then: import + the send's models validating a body,
# everything before its database and SQS calls. Printed beside the target's measure.
FIRST_SEND = ("import app; from chalicelib.routing import parse_model; "
              "spec = next(s for s in app.router.specs if s.name == 'send_message'); "
              "parse_model(spec.body, {'to': '5511912345678', 'type': 'text', 'text': 'hi'}, where='body'); "
              "parse_model(spec.query, {}, where='query'); spec.responses")
PROBE = ("import time, sys; sys.path[:0] = [p for p in sys.argv[2:]]; t = time.perf_counter(); "
         "exec(sys.argv[1]); print(time.perf_counter() - t)")
_PATHS: list[str] = []  # set by --package: the extracted zip and the runtime's boto3
_FLAGS: list[str] = []


def sample(statement: str, env: dict[str, str]) -> float:
    answer = subprocess.run([sys.executable, *_FLAGS, "-c", PROBE, statement, *_PATHS],
                            cwd=_PATHS[0] if _PATHS else ROOT, env=env, capture_output=True, text=True)
    if answer.returncode:
        raise SystemExit(f"`{statement}` failed:\n{answer.stderr[-1500:]}")
    return float(answer.stdout.strip().splitlines()[-1])


def build_package(work: Path) -> None:
    """chalice package --stage prod on a copy of the project; extract; point imports at it."""
    import zipfile

    sys.path.insert(0, str(ROOT))
    from devstack.lambda_package import chalice_package, runtime_libraries

    zip_path = chalice_package(work) / "deployment.zip"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(work / "task")
    runtime = runtime_libraries(work / "runtime")
    print(f"Lambda package: {zip_path.stat().st_size / 1e6:.2f} MB zipped")
    _PATHS[:] = [str(work / "task"), str(runtime)]
    _FLAGS[:] = ["-S"]


def measure(rounds: int) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT", "PYTHON"))}
    env.update({"AWS_LAMBDA_FUNCTION_NAME": "zemeow-bench", "QUEUE_PREFIX": "zemeow",
                "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1"})
    sample(FIRST_SEND, env), sample(BASELINE, env)  # warm the OS file cache and write .pyc files once
    times: dict[str, list[float]] = {"baseline": [], "app": [], "first_send": []}
    for _ in range(rounds):  # interleaved, so machine noise hits all alike
        times["baseline"].append(sample(BASELINE, env))
        times["app"].append(sample(APP, env))
        times["first_send"].append(sample(FIRST_SEND, env))
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--package", action="store_true", help="import from the chalice package zip")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zemeow-cold-import-") as work:
        if args.package:
            build_package(Path(work))
        times = measure(args.rounds)
        if args.package:  # the same, with the zip's modules byte-compiled ahead (Lambda cannot write .pyc)
            import compileall
            import py_compile

            compileall.compile_dir(_PATHS[0], quiet=2, workers=2,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            compiled = measure(args.rounds)
    base, app = statistics.median(times["baseline"]), statistics.median(times["app"])
    where = "the chalice package zip (+ the runtime's boto3), no site-packages" if args.package \
        else "the dev virtualenv"
    print(f"python {sys.version.split()[0]}, {args.rounds} interleaved rounds, fresh interpreter each, from {where}")
    print(f"  {BASELINE:<32} median {base * 1000:7.1f} ms   min {min(times['baseline']) * 1000:7.1f} ms")
    print(f"  {APP:<32} median {app * 1000:7.1f} ms   min {min(times['app']) * 1000:7.1f} ms")
    ratio = app / base
    print(f"  ratio app/baseline (medians)     {ratio:.2f}x  (target <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})")
    first = statistics.median(times["first_send"])
    print("  import app + the first send's models validating a body (lazy schemas, pydantic)")
    print(f"  {'':<32} median {first * 1000:7.1f} ms   ratio {first / base:.2f}x")
    if args.package:
        base_c, app_c = statistics.median(compiled["baseline"]), statistics.median(compiled["app"])
        print("  with the zip's modules byte-compiled ahead (as shipped: none; Lambda compiles at each cold start):")
        print(f"  {BASELINE:<32} median {base_c * 1000:7.1f} ms")
        print(f"  {APP:<32} median {app_c * 1000:7.1f} ms   ratio {app_c / base_c:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
