"""custseg.realtime.kafka settings without Spark: brokers, client settings from the environment, errors."""

from __future__ import annotations

import pytest

from custseg.config import ConfigError, load_config
from custseg.realtime.kafka import bootstrap_servers, client_options, read_kafka, topic


def test_brokers_from_environment_win_over_conf():
    conf = load_config().with_overrides({"stream.kafka.bootstrap_servers": "conf-host:9092"})
    assert bootstrap_servers(conf, {}) == "conf-host:9092"
    assert bootstrap_servers(conf, {"CUSTSEG_KAFKA_BOOTSTRAP": " env-host:9093 "}) == "env-host:9093"


def test_no_brokers_fails_naming_key_and_file():
    conf = load_config()
    with pytest.raises(ConfigError, match=r"\.yaml: key .stream\.kafka\.bootstrap_servers.*CUSTSEG_KAFKA_BOOTSTRAP"):
        bootstrap_servers(conf, {})


def test_client_settings_only_from_prefixed_environment():
    conf = load_config()
    env = {
        "CUSTSEG_KAFKA_BOOTSTRAP": "h:1",
        "CUSTSEG_KAFKA_OPT_SECURITY_PROTOCOL": "SASL_SSL",
        "CUSTSEG_KAFKA_OPT_SASL_JAAS_CONFIG": "secret-jaas",
        "CUSTSEG_KAFKA_OPT_": "ignored: no name",
        "KAFKA_OPT_OTHER": "ignored: not ours",
    }
    assert client_options(conf, env) == {
        "kafka.bootstrap.servers": "h:1",
        "kafka.sasl.jaas.config": "secret-jaas",
        "kafka.security.protocol": "SASL_SSL",
    }


def test_topics_per_source_and_unknown_source():
    conf = load_config()
    assert topic(conf, "events") == "custseg.events"
    with pytest.raises(ConfigError, match=r"stream\.kafka\.topics\.social"):
        topic(conf, "social")


def test_bad_starting_offsets_fail_before_spark():
    conf = load_config().with_overrides({"stream.kafka.starting_offsets": "beginning"})
    with pytest.raises(ConfigError, match=r"stream\.kafka\.starting_offsets.*'beginning'"):
        read_kafka(None, conf, "events")
