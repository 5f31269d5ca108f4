"""Configuration: how FluxQueue picks its broker and serializer, and the errors it gives."""

from pathlib import Path

import pytest

from fluxqueue import (
    Broker,
    ConfigurationError,
    FluxQueue,
    FluxQueueError,
    UnknownComponentError,
)
from fluxqueue.backends.memory import MemoryBroker
from fluxqueue.serializers.json import JSONSerializer
from fluxqueue.serializers.pickle import PickleSerializer


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "FLUXQUEUE_BROKER_URL",
        "FLUXQUEUE_REDIS_URL",
        "FLUXQUEUE_SERIALIZER",
        "FLUXQUEUE_ACCEPT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_url_scheme_selects_the_broker() -> None:
    fq = FluxQueue("memory://")
    assert isinstance(fq.broker, MemoryBroker)
    assert isinstance(fq.serializer, JSONSerializer)


def test_broker_instance_is_used_as_is() -> None:
    broker = MemoryBroker()
    assert FluxQueue(broker).broker is broker


def test_environment_variable_then_fluxqueue_rust_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXQUEUE_REDIS_URL", "memory://?visibility_timeout=7")
    assert FluxQueue().broker.visibility_timeout == 7
    monkeypatch.setenv("FLUXQUEUE_BROKER_URL", "memory://?visibility_timeout=9")
    assert FluxQueue().broker.visibility_timeout == 9
    # an explicit argument wins over both
    assert FluxQueue("memory://?visibility_timeout=3").broker.visibility_timeout == 3


def test_fluxqueue_redis_url_keyword_selects_a_broker_by_scheme() -> None:
    assert isinstance(FluxQueue(redis_url="memory://").broker, MemoryBroker)
    with pytest.raises(FluxQueueError, match="not both"):
        FluxQueue("memory://", redis_url="memory://")


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(UnknownComponentError) as caught:
        FluxQueue("amqp://guest@localhost")
    message = str(caught.value)
    assert "unknown broker URL scheme 'amqp'" in message
    for known in ("memory", "redis", "sqlite"):
        assert known in message
    assert isinstance(caught.value, ConfigurationError)


@pytest.mark.parametrize("url", ["localhost:6379", "redis//localhost", "", "://x"])
def test_malformed_url(url: str) -> None:
    with pytest.raises(ConfigurationError, match="malformed broker URL"):
        FluxQueue(url or " ")


def test_malformed_url_error_hides_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        FluxQueue("redis:/:hunter2@localhost")
    assert "hunter2" not in str(caught.value)


def test_serializer_by_name_or_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(FluxQueue("memory://", serializer="pickle").serializer, PickleSerializer)
    instance = PickleSerializer()
    assert FluxQueue("memory://", serializer=instance).serializer is instance
    monkeypatch.setenv("FLUXQUEUE_SERIALIZER", "pickle")
    assert FluxQueue("memory://").serializer.name == "pickle"


def test_unknown_serializer() -> None:
    with pytest.raises(UnknownComponentError, match=r"unknown serializer 'yaml'; known: .*json"):
        FluxQueue("memory://", serializer="yaml")


def test_accept_defaults_to_json_plus_own(monkeypatch: pytest.MonkeyPatch) -> None:
    assert FluxQueue("memory://").accept == ["json"]
    assert FluxQueue("memory://", serializer="pickle").accept == ["pickle", "json"]
    assert FluxQueue("memory://", accept=["pickle"]).accept == ["json", "pickle"]
    monkeypatch.setenv("FLUXQUEUE_ACCEPT", "pickle")
    assert FluxQueue("memory://").accept == ["json", "pickle"]


def test_result_ttl_must_be_positive() -> None:
    assert FluxQueue("memory://", result_ttl=None).result_ttl is None
    with pytest.raises(FluxQueueError, match="result_ttl"):
        FluxQueue("memory://", result_ttl=0)


def test_repr_never_shows_a_password() -> None:
    class Dummy(MemoryBroker):
        def __init__(self) -> None:
            super().__init__()
            self.url = "redis://:hunter2@example:6379/0"

    fq = FluxQueue(Dummy())
    assert "hunter2" not in repr(fq)
    assert "hunter2" not in repr(fq.broker)
    assert isinstance(fq.broker, Broker)


def test_context_outside_a_worker_is_a_clear_error() -> None:
    with pytest.raises(FluxQueueError, match=r"fq.context is only available while a worker runs"):
        _ = FluxQueue("memory://").context


def test_default_is_a_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fq = FluxQueue()
    assert fq.broker.url == "sqlite:///fluxqueue.db"
    assert str(tmp_path / "fluxqueue.db") in repr(fq.broker)
