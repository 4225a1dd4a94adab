"""Loaded (through PYTHONPATH) by the `chalice` processes of tests/infra/test_chalice_deploy.py only.

LocalStack without Docker creates a Lambda function and then marks it `Failed` ("Error
while creating lambda": it cannot prepare a runtime container), and chalice's
`function_active` waiter stops the deploy there. This lets the deploy go on past a
function in exactly that state, printing a `LOCALSTACK_NO_DOCKER` line per function, so
the test can check everything else the deploy creates. Nothing pretends the function can
run: its state stays `Failed`, and the test asserts it is.

Deleting such a function, LocalStack answers 500 ("Unable to find version manager") after
removing it, botocore retries, and the retry gets 404, which chalice reports as an error.
`chalice delete` goes on when the function is indeed gone; the test checks that it is.
"""
from __future__ import annotations

try:
    from botocore.exceptions import WaiterError
    from chalice import awsclient
except ImportError:  # not a chalice process
    pass
else:
    _wait_for_active = awsclient.TypedAWSClient._wait_for_active

    def _created_even_if_failed(self, function_name: str) -> None:
        try:
            _wait_for_active(self, function_name)
        except WaiterError:
            config = self._client("lambda").get_function_configuration(FunctionName=function_name)
            reason = config.get("StateReason") or ""
            if config.get("State") != "Failed" or "Error while creating lambda" not in reason:
                raise
            print(f"LOCALSTACK_NO_DOCKER {function_name}: created, state Failed ({reason})", flush=True)

    awsclient.TypedAWSClient._wait_for_active = _created_even_if_failed

    _delete_function = awsclient.TypedAWSClient.delete_function

    def _deleted_even_if_it_said_so_late(self, function_name: str) -> None:
        try:
            _delete_function(self, function_name)
        except awsclient.ResourceDoesNotExistError:
            client = self._client("lambda")
            try:
                client.get_function(FunctionName=function_name)
            except client.exceptions.ResourceNotFoundException:
                print(f"LOCALSTACK_NO_DOCKER {function_name}: deleted (LocalStack answered 500, then 404)",
                      flush=True)
                return
            raise

    awsclient.TypedAWSClient.delete_function = _deleted_even_if_it_said_so_late
