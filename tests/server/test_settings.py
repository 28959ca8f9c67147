"""pylog-server configuration precedence: flags > PYLOG_* environment > TOML file."""
import pytest

from pylog.server.settings import ConfigError, parse_config


def test_defaults():
    c = parse_config([], environ={})
    assert (c.data_dir, c.kafka_listener, c.num_partitions, c.auto_create_topics) == \
        ("./data", "127.0.0.1:9092", 1, True)


def test_flags_override_environment_override_file(tmp_path):
    f = tmp_path / "pylog.toml"
    f.write_text('num_partitions = 2\ndata_dir = "/from/file"\nlog_json = true\n'
                 'kafka_listener = "127.0.0.1:1111"\n')
    env = {"PYLOG_NUM_PARTITIONS": "3", "PYLOG_DATA_DIR": "/from/env"}
    c = parse_config(["--config", str(f), "--num-partitions", "4"], environ=env)
    assert (c.num_partitions, c.data_dir, c.log_json, c.kafka_listener) == \
        (4, "/from/env", True, "127.0.0.1:1111")
    c = parse_config(["--no-auto-create-topics"], environ={"PYLOG_AUTO_CREATE_TOPICS": "1"})
    assert c.auto_create_topics is False


@pytest.mark.parametrize("argv,env,needle", [
    (["--num-partitions", "x"], {}, "--num-partitions"),
    ([], {"PYLOG_KAFKA_LISTENER": "nohostport"}, "PYLOG_KAFKA_LISTENER"),
    ([], {"PYLOG_LOG_JSON": "maybe"}, "PYLOG_LOG_JSON"),
    (["--max-connections", "0"], {}, "--max-connections"),
    ([], {"PYLOG_REQUEST_TIMEOUT_MS": "-5"}, "PYLOG_REQUEST_TIMEOUT_MS"),
])
def test_bad_values_name_the_option(argv, env, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_config(argv, environ=env)


def test_unknown_toml_key_is_an_error(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("num_partiton = 3\n")
    with pytest.raises(ConfigError, match="num_partiton"):
        parse_config(["--config", str(f)], environ={})


def test_max_connections_and_request_timeout():
    c = parse_config([], environ={})
    assert (c.max_connections, c.request_timeout_ms) == (None, 30_000)   # None: from the fd limit
    c = parse_config(["--max-connections", "500"], environ={"PYLOG_REQUEST_TIMEOUT_MS": "2000"})
    assert (c.max_connections, c.request_timeout_ms) == (500, 2000)


def test_default_max_connections_keeps_a_reserve_below_the_fd_limit():
    import resource

    from pylog.server.listener import default_max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 1 <= default_max_connections() <= max(1, soft - 64)
