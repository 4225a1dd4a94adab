"""API Gateway stage throttling set by the deploy (infra/deploy.py), so that a flood is
refused by API Gateway before it reaches the Lambdas; the per-key limit sits behind it."""
from __future__ import annotations

import boto3
from botocore.stub import Stubber

from infra.deploy import STAGES, Deployer, parse_args, stage_throttling

ROOT_OUTPUTS = "infra/sample-outputs.json"


def test_dry_run_throttles_the_stage_after_the_deploy(tmp_path):
    lines: list[str] = []
    opts = parse_args(["--stage", "prod", "--dry-run", "--outputs-file", ROOT_OUTPUTS,
                       "--image", "example/zemeow-runner:1", "--chalice-dir", str(tmp_path / ".chalice")])
    assert Deployer(opts, say=lines.append).run() == 0
    out = "\n".join(lines)
    assert "throttle the API Gateway stage 'api': 500 requests/s, burst 1000" in out
    assert out.index("chalice deploy") < out.index("throttle the API Gateway stage") < out.index("API URL")


def test_every_stage_throttles_below_what_its_lambdas_can_take():
    for name, profile in STAGES.items():
        assert 0 < profile.api_throttle_rate <= profile.api_throttle_burst, name
    assert STAGES["dev"].api_throttle_rate < STAGES["prod"].api_throttle_rate


def test_the_update_stage_call_is_valid_and_targets_the_deployed_api(tmp_path, monkeypatch):
    opts = parse_args(["--stage", "prod", "--chalice-dir", str(tmp_path), "--skip-chalice"])
    deployer = Deployer(opts, say=lambda line: None)
    client = boto3.client("apigateway", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)  # checks the parameters against API Gateway's own service model
    stubber.add_response("update_stage", {"stageName": "api"}, {
        "restApiId": "abc123", "stageName": "api",
        "patchOperations": [{"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "500"},
                            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "1000"}]})
    monkeypatch.setattr(deployer, "client", lambda service: {"apigateway": client}[service])
    monkeypatch.setattr(deployer, "deployed", lambda: {"resources": [
        {"name": "api_handler", "resource_type": "lambda_function"},
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "abc123",
         "rest_api_url": "https://abc123.execute-api.us-east-1.amazonaws.com/api/"}]})
    with stubber:
        deployer.throttle_api_stage()
        stubber.assert_no_pending_responses()
    assert stage_throttling(12.5, 30)[0]["value"] == "12.5"
