"""`chalice package --stage prod`: the Lambda deployment package and its SAM template.

Runs the real `chalice package` on a copy of the project in a temporary directory (it
needs no AWS; it downloads manylinux wheels from PyPI for Lambda's platform, cached by
pip after the first run), then checks the template (one REST API, every route of
app.py, the webhook dispatcher's SQS event source) and the zip (no neonize, < 20 MB),
and imports and invokes the packaged app with nothing but the zip and the libraries
Lambda's Python runtime provides (boto3 and its dependencies).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from devstack.lambda_package import PROD_QUEUE_PREFIX, chalice_package, runtime_libraries

ROOT = Path(__file__).resolve().parents[2]
MAX_ZIP_BYTES = 20 * 1024 * 1024
PREFIX = PROD_QUEUE_PREFIX

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    work = tmp_path_factory.mktemp("chalice-package")
    started = time.monotonic()
    out = chalice_package(work)
    print(f"\nchalice package --stage prod: {time.monotonic() - started:.1f}s")
    return {"dir": out, "template": json.loads((out / "sam.json").read_text()), "zip": out / "deployment.zip",
            "work": work}


def _resources(template, kind):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_template_has_one_api_with_every_route_of_app(package):
    import app as app_module

    template = package["template"]
    apis = _resources(template, "AWS::Serverless::Api")
    assert len(apis) == 1, list(apis)
    paths = next(iter(apis.values()))["Properties"]["DefinitionBody"]["paths"]
    expected = {(path, method.lower()) for path, methods in app_module.app.routes.items() for method in methods}
    packaged = {(path, method) for path, methods in paths.items() for method in methods
                if method in ("get", "post", "put", "delete", "patch", "head", "options")}
    assert expected and expected <= packaged, sorted(expected - packaged)
    functions = _resources(template, "AWS::Serverless::Function")
    api_handler = functions["APIHandler"]["Properties"]
    assert api_handler["Runtime"] == "python3.11" and api_handler["Handler"] == "app.app"
    assert api_handler["CodeUri"] == "./deployment.zip"


def test_template_has_the_dispatcher_with_its_sqs_event_source(package):
    import app as app_module
    from infra.deploy import sqs_handler_names, template_queue_names

    sources = [s for s in app_module.app.event_sources if type(s).__name__ == "SQSEventConfig"]
    assert sources, "app.py lost its @app.on_sqs_message handler (the webhook dispatcher)"
    functions = _resources(package["template"], "AWS::Serverless::Function")
    sqs_events = {name: event for name, fn in functions.items()
                  for event in fn["Properties"].get("Events", {}).values() if event["Type"] == "SQS"}
    assert len(sqs_events) == len(sources) == len(sqs_handler_names())
    known_queues = set(template_queue_names(PREFIX))
    for name, event in sqs_events.items():
        queue_arn = json.dumps(event["Properties"]["Queue"])
        queue = queue_arn.rsplit(":", 1)[-1].strip('"}')
        assert queue in known_queues, f"{name} listens on {queue}, which infra/messaging.yaml does not declare"
    assert any(q.endswith(f":{PREFIX}-events\"}}") or q.endswith(f":{PREFIX}-events\"")
               for q in (json.dumps(e["Properties"]["Queue"]) for e in sqs_events.values())), sqs_events
    # AWS: the queue's visibility timeout must be at least 6x the consuming function's timeout
    from cfnlint.decode import cfn_yaml

    visibility = cfn_yaml.load(str(ROOT / "infra" / "messaging.yaml"))["Parameters"]["EventsVisibilityTimeout"]
    for name in sqs_events:
        timeout = functions[name]["Properties"]["Timeout"]
        print(f"\n{name}: timeout {timeout}s, events visibility timeout {visibility['Default']}s")
        assert 6 * timeout <= visibility["Default"], (name, timeout)
        assert sqs_events[name]["Properties"]["BatchSize"] >= 1


def test_zip_is_small_and_has_no_runner_only_packages(package):
    size = package["zip"].stat().st_size
    with zipfile.ZipFile(package["zip"]) as archive:
        names = archive.namelist()
        unzipped = sum(info.file_size for info in archive.infolist())
    print(f"\nLambda deployment.zip: {size / 1e6:.2f} MB ({size} bytes), unzipped {unzipped / 1e6:.1f} MB, "
          f"{len(names)} files")
    assert not [n for n in names if "neonize" in n.lower()]
    assert not [n for n in names if n.startswith(("runner_container/", "tests/", "devstack/", "infra/"))]
    assert "app.py" in names and "chalicelib/config.py" in names
    assert any(n.startswith("chalicelib/db/migrations/") and n.endswith(".sql") for n in names)
    assert size < MAX_ZIP_BYTES, f"{size / 1e6:.1f} MB"
    assert unzipped < 250 * 1024 * 1024  # Lambda's unzipped limit


def test_packaged_app_imports_and_answers_with_only_the_zip_and_the_runtime(package, tmp_path):
    """Like Lambda: the zip on sys.path, plus boto3 & co (the runtime's), no site-packages."""
    code = tmp_path / "task"
    with zipfile.ZipFile(package["zip"]) as archive:
        archive.extractall(code)
    runtime = runtime_libraries(tmp_path / "runtime")
    probe = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
class Context:
    aws_request_id = "req-1"; function_name = "zemeow-prod"; memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:zemeow-prod"
    def get_remaining_time_in_millis(self): return 30000
event = {"resource": "/openapi.json", "path": "/openapi.json", "httpMethod": "GET", "headers": {},
         "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
         "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
         "requestContext": {"resourcePath": "/openapi.json", "httpMethod": "GET", "requestId": "req-1",
                            "stage": "api", "path": "/api/openapi.json"}}
answer = app.app(event, Context())
print(json.dumps({"status": answer["statusCode"], "paths": len(json.loads(answer["body"]).get("paths", {})),
                  "neonize": any("neonize" in m for m in sys.modules)}))
"""
    env = {"PATH": os.environ.get("PATH", ""), "AWS_LAMBDA_FUNCTION_NAME": "zemeow-prod", "AWS_DEFAULT_REGION":
           "us-east-1", "QUEUE_PREFIX": PREFIX, "ENVIRONMENT": "production", "LOG_LEVEL": "ERROR"}
    result = subprocess.run([sys.executable, "-S", "-c", probe, str(code), str(runtime)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, "the packaged app does not import: " + result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer == {"status": 200, "paths": answer["paths"], "neonize": False} and answer["paths"] > 0
