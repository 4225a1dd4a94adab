"""CloudFormation templates and the deploy script (python -m infra.deploy)."""
