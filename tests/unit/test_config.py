"""Configuration parsing: every variable, its default, and every bad form named."""
from __future__ import annotations

import pytest

from chalicelib.config import (DEFAULT_WEBHOOK_RETRY_SCHEDULE, load_settings, parse_duration,
                               queue_prefix_from_env)
from chalicelib.errors import ConfigError


def test_defaults_match_the_contract():
    s = load_settings({})
    assert s.server_port == 8080
    assert s.qr_code_timeout == 60.0
    assert s.webhook_timeout == 10.0
    assert s.whatsapp_driver == "neonize"
    assert s.environment == "development"
    assert s.log_level == "INFO" and s.log_pretty is False
    assert s.database_url is None  # embedded server
    assert (s.runner_max_sessions, s.runner_memory_high_mb, s.placement_step) == (0, 0, 500)
    assert s.webhook_retry_schedule == DEFAULT_WEBHOOK_RETRY_SCHEDULE
    assert s.webhook_allow_private is False
    assert s.emulator_port == 8081
    assert s.emulator_token is None and s.runner_bind_host == "127.0.0.1"
    assert s.queue_prefix == "zemeow"
    assert s.db_pool_max_size == 10
    assert (s.runner_heartbeat_interval, s.runner_lease_ttl, s.runner_lifeline) == (1.0, 15.0, True)


def test_lambda_containers_get_one_connection():
    assert load_settings({"AWS_LAMBDA_FUNCTION_NAME": "zemeow-dev"}).db_pool_max_size == 1


@pytest.mark.parametrize("text,seconds", [
    ("10s", 10), ("2m", 120), ("1h", 3600), ("250ms", 0.25), ("45", 45), (" 1.5m ", 90),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_every_variable_is_read():
    s = load_settings({
        "DATABASE_URL": "postgresql://u:p@db:5432/zemeow",
        "SERVER_PORT": "9000", "ENVIRONMENT": "staging", "ADMIN_API_KEY": "k" * 32,
        "ADMIN_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:x",
        "ENCRYPTION_KEY": "e" * 43, "QR_CODE_TIMEOUT": "2m", "LOG_LEVEL": "debug",
        "LOG_PRETTY": "true", "WEBHOOK_TIMEOUT": "15s", "WEBHOOK_RETRY_COUNT": "5",
        "WEBHOOK_RETRY_SCHEDULE": "1s,2s,3s", "WHATSAPP_DRIVER": "emulator",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_REGION": "eu-west-1",
        "RUNNER_MAX_SESSIONS": "800", "PLACEMENT_STEP": "50", "RUNNER_MEMORY_HIGH_MB": "3000", "QUEUE_PREFIX": "zz-1", "EMULATOR_PORT": "9001",
        "METRICS_PORT": "9002", "DB_POOL_MAX_SIZE": "3", "DB_CONNECT_TIMEOUT": "2s",
        "DB_STATEMENT_TIMEOUT": "30s", "RUNNER_ID": "r1", "RUNNER_HEARTBEAT_INTERVAL": "2s",
        "RUNNER_LEASE_TTL": "20s", "MAX_BODY_BYTES": "2048", "DATA_DIR": "/tmp/zz",
        "EMULATOR_TOKEN": "t" * 24, "RUNNER_BIND_HOST": "0.0.0.0",
    })
    assert s.database_url == "postgresql://u:p@db:5432/zemeow"
    assert (s.server_port, s.environment, s.log_level, s.log_pretty) == (9000, "staging", "DEBUG", True)
    assert (s.emulator_token, s.runner_bind_host) == ("t" * 24, "0.0.0.0")
    assert s.admin_api_key == "k" * 32 and s.encryption_key == "e" * 43
    assert s.admin_api_key_secret_arn.endswith(":secret:x")
    assert (s.qr_code_timeout, s.webhook_timeout, s.webhook_retry_count) == (120, 15, 5)
    assert s.webhook_retry_schedule == (1, 2, 3)
    assert (s.whatsapp_driver, s.aws_endpoint_url, s.aws_region) == ("emulator", "http://127.0.0.1:4566", "eu-west-1")
    assert (s.runner_max_sessions, s.placement_step, s.runner_memory_high_mb) == (800, 50, 3000)
    assert (s.queue_prefix, s.emulator_port, s.metrics_port) == ("zz-1", 9001, 9002)
    assert (s.db_pool_max_size, s.db_connect_timeout, s.db_statement_timeout) == (3, 2, 30)
    assert (s.runner_id, s.runner_heartbeat_interval, s.runner_lease_ttl) == ("r1", 2, 20)
    assert s.max_body_bytes == 2048 and str(s.data_dir) == "/tmp/zz"
    assert s.command_dlq_name == "zz-1-commands-dlq.fifo"
    assert s.events_queue_name == "zz-1-events"


def test_database_url_wins_over_postgres_variables():
    s = load_settings({"DATABASE_URL": "postgres://a@x/y", "POSTGRES_HOST": "other"})
    assert s.database_url == "postgres://a@x/y"


def test_postgres_variables_build_a_quoted_url():
    s = load_settings({"POSTGRES_HOST": "db.internal", "POSTGRES_PORT": "6543", "POSTGRES_DB": "zm",
                       "POSTGRES_USER": "zemeow", "POSTGRES_PASSWORD": "p@ss/w:rd"})
    assert s.database_url == "postgresql://zemeow:p%40ss%2Fw%3Ard@db.internal:6543/zm"


@pytest.mark.parametrize("name,value,expected", [
    ("SERVER_PORT", "http", "SERVER_PORT=http"),
    ("SERVER_PORT", "70000", "port number from 1 to 65535"),
    ("QR_CODE_TIMEOUT", "soon", "duration such as 10s, 2m, 1h"),
    ("WEBHOOK_TIMEOUT", "10 minutes", "WEBHOOK_TIMEOUT"),
    ("LOG_LEVEL", "loud", "expected one of DEBUG, INFO"),
    ("LOG_PRETTY", "maybe", "expected true or false"),
    ("WHATSAPP_DRIVER", "selenium", "expected one of neonize, emulator"),
    ("ENVIRONMENT", "prod", "expected one of development"),
    ("PLACEMENT_STEP", "0", "whole number from 1 to 100000"),
    ("RUNNER_MAX_SESSIONS", "-5", "whole number from 0 to 1000000"),
    ("WEBHOOK_RETRY_COUNT", "-1", "whole number from 0 to 50"),
    ("WEBHOOK_RETRY_SCHEDULE", "1s,later", "WEBHOOK_RETRY_SCHEDULE"),
    ("DATABASE_URL", "mysql://x", "postgresql:// or postgres:// URL"),
    ("AWS_ENDPOINT_URL", "localhost:4566", "URL such as http://127.0.0.1:4566"),
    ("QUEUE_PREFIX", "bad prefix!", "QUEUE_PREFIX"),
    ("POSTGRES_PORT", "x", "POSTGRES_PORT"),
    ("MESSAGE_STORE", "everything", "expected one of full, metadata, off"),
    ("MESSAGE_STORE_RETENTION", "10s", "MESSAGE_STORE_RETENTION"),
    ("HISTORY_SYNC", "all", "expected one of off, recent, full"),
    ("CONTACT_PROFILE_TTL", "soon", "CONTACT_PROFILE_TTL"),
])
def test_bad_values_stop_with_the_variable_named(name, value, expected):
    env = {name: value}
    if name == "POSTGRES_PORT":
        env["POSTGRES_HOST"] = "db"
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert name in str(info.value)
    assert expected in str(info.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as info:
        load_settings({"SERVER_PORT": "x", "LOG_LEVEL": "y", "QR_CODE_TIMEOUT": "z"})
    assert len(info.value.problems) == 3


def test_a_bad_secret_is_not_echoed():
    with pytest.raises(ConfigError) as info:
        load_settings({"DATABASE_URL": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(info.value)


def test_settings_repr_hides_secrets():
    s = load_settings({"ADMIN_API_KEY": "super-secret-admin-key-123",
                       "DATABASE_URL": "postgresql://u:hunter2@db/x"})
    assert "super-secret" not in repr(s) and "hunter2" not in repr(s)


def test_lease_must_outlive_heartbeat():
    with pytest.raises(ConfigError, match="RUNNER_LEASE_TTL"):
        load_settings({"RUNNER_HEARTBEAT_INTERVAL": "10s", "RUNNER_LEASE_TTL": "5s"})


def test_private_webhooks_refused_in_production():
    with pytest.raises(ConfigError, match="WEBHOOK_ALLOW_PRIVATE"):
        load_settings({"ENVIRONMENT": "production", "WEBHOOK_ALLOW_PRIVATE": "true"})


def test_queue_prefix_for_decorators():
    assert queue_prefix_from_env({"QUEUE_PREFIX": "abc"}) == "abc"
    assert queue_prefix_from_env({}) == "zemeow"


def test_contacts_check_limits_parse_and_must_allow_a_full_batch():
    default = load_settings({})
    assert (default.contacts_check_max_batch, default.contacts_check_rate_limit) == (50, (200, 3600.0))
    s = load_settings({"CONTACTS_CHECK_MAX_BATCH": "20", "CONTACTS_CHECK_RATE_LIMIT": "60/10m"})
    assert (s.contacts_check_max_batch, s.contacts_check_rate_limit) == (20, (60, 600.0))
    assert load_settings({"CONTACTS_CHECK_RATE_LIMIT": "500"}).contacts_check_rate_limit == (500, 3600.0)
    for env, named in [({"CONTACTS_CHECK_RATE_LIMIT": "lots/1h"}, "CONTACTS_CHECK_RATE_LIMIT=lots/1h"),
                       ({"CONTACTS_CHECK_RATE_LIMIT": "0/1h"}, "CONTACTS_CHECK_RATE_LIMIT=0/1h"),
                       ({"CONTACTS_CHECK_MAX_BATCH": "0"}, "CONTACTS_CHECK_MAX_BATCH=0"),
                       ({"CONTACTS_CHECK_RATE_LIMIT": "10/1h"}, "at least one full batch")]:
        with pytest.raises(ConfigError) as bad:
            load_settings(env)
        assert named in str(bad.value), env


def test_breaker_settings_are_read_once_and_name_their_variable():
    """Issue 12: BreakerConfig read the environment itself and raised a bare ValueError."""
    from chalicelib.webhooks.breaker import BreakerConfig

    settings = load_settings({"WEBHOOK_BREAKER_THRESHOLD": "3", "WEBHOOK_BREAKER_COOLDOWN": "45s",
                              "WEBHOOK_TIMEOUT": "4s"})
    assert BreakerConfig.from_settings(settings) == BreakerConfig(threshold=3, cooldown=45.0, probe_timeout=34.0)
    assert load_settings({"WEBHOOK_BREAKER_THRESHOLD": "0"}).webhook_breaker_threshold == 1
    assert BreakerConfig.from_settings(load_settings({})) == BreakerConfig(threshold=5, cooldown=30.0,
                                                                           probe_timeout=40.0)
    with pytest.raises(ConfigError) as caught:
        load_settings({"WEBHOOK_BREAKER_THRESHOLD": "many", "WEBHOOK_BREAKER_COOLDOWN": "soon"})
    assert "WEBHOOK_BREAKER_THRESHOLD=many" in str(caught.value)
    assert "WEBHOOK_BREAKER_COOLDOWN=soon" in str(caught.value)


def test_the_message_store_settings_and_their_defaults():
    s = load_settings({})
    assert (s.message_store, s.message_store_retention, s.history_sync) == ("full", 90 * 86400.0, "recent")
    assert s.retention["messages"] == s.retention["chats"] == s.retention["contacts"] == 90 * 86400.0
    s = load_settings({"MESSAGE_STORE": "Metadata", "MESSAGE_STORE_RETENTION": "off", "HISTORY_SYNC": "full"})
    assert (s.message_store, s.history_sync, s.retention["messages"]) == ("metadata", "full", None)
