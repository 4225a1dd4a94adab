"""Deploys infra/messaging.yaml (and infra/media.yaml) through CloudFormation (LocalStack
here, AWS in deploy) and reads the queue URLs / bucket name from the outputs: one template
for local and AWS.
"""
from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from devstack import PROJECT_ROOT

from pathlib import Path

TEMPLATE_PATH = PROJECT_ROOT / "infra" / "messaging.yaml"
MEDIA_TEMPLATE_PATH = PROJECT_ROOT / "infra" / "media.yaml"
_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
_FAILED = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_COMPLETE",
           "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED"}


class StackError(RuntimeError):
    pass


def deploy_messaging_stack(cfn: Any, stack_name: str, parameters: dict[str, Any], *,
                           timeout: float = 180.0, template: Path = TEMPLATE_PATH) -> dict[str, str]:
    """Create or update the stack; wait; return its outputs as a dict.

    Two launchers may deploy the same stack at once (two `make run`s sharing a prefix, or
    a test and a launcher): the one whose CreateStack loses the race gets
    AlreadyExistsException and waits for the other's stack instead of failing."""
    body = template.read_text()
    params = [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()]
    existing = _status(cfn, stack_name)
    if existing and existing.endswith("_IN_PROGRESS"):  # someone else's deploy: let it finish
        existing = _wait(cfn, stack_name, _DONE | _FAILED | {None}, timeout)
    if existing in ("ROLLBACK_COMPLETE", "CREATE_FAILED", "DELETE_FAILED"):
        cfn.delete_stack(StackName=stack_name)
        _wait(cfn, stack_name, {"DELETE_COMPLETE", None}, timeout)
        existing = None
    if existing is None or existing == "DELETE_COMPLETE":
        try:
            cfn.create_stack(StackName=stack_name, TemplateBody=body, Parameters=params)
        except ClientError as exc:
            if _error_code(exc) != "AlreadyExistsException":
                raise
    else:
        try:
            cfn.update_stack(StackName=stack_name, TemplateBody=body, Parameters=params)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
    status = _wait(cfn, stack_name, _DONE | _FAILED, timeout)
    if status not in _DONE or status == "UPDATE_ROLLBACK_COMPLETE":
        raise StackError(f"stack {stack_name} ended in {status}: {_failure_reasons(cfn, stack_name)}")
    return stack_outputs(cfn, stack_name)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def stack_outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def delete_stack(cfn: Any, stack_name: str, timeout: float = 120.0) -> None:
    if _status(cfn, stack_name) is None:
        return
    cfn.delete_stack(StackName=stack_name)
    _wait(cfn, stack_name, {"DELETE_COMPLETE", None}, timeout)


def _status(cfn: Any, stack_name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0]["StackStatus"] if stacks else None


def _wait(cfn: Any, stack_name: str, wanted: set, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(cfn, stack_name)
        if status in wanted:
            return status
        if time.monotonic() > deadline:
            raise StackError(f"stack {stack_name} still {status} after {timeout:g}s")
        time.sleep(0.5)


def _failure_reasons(cfn: Any, stack_name: str) -> str:
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError:
        return "(no events)"
    reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
               for e in events if "FAILED" in e.get("ResourceStatus", "")]
    return "; ".join(reasons[:5]) or "(no failure reason reported)"
