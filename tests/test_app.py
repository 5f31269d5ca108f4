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


# -- the interfaces the worker and the CLI use instead of private fields ----------------


def test_use_broker_switches_to_a_url_or_an_instance(tmp_path: Path) -> None:
    fq = FluxQueue("memory://")
    switched = fq.use_broker(f"sqlite:///{tmp_path}/other.db")
    assert fq.broker is switched and switched.url.endswith("other.db")
    mine = MemoryBroker()
    assert fq.use_broker(mine) is mine and fq.broker is mine
    with pytest.raises(UnknownComponentError, match="unknown broker URL scheme 'nope'"):
        fq.use_broker("nope://x")
    assert fq.broker is mine  # a failed switch keeps the broker it had


def test_task_spec_is_what_the_worker_reads() -> None:
    fq = FluxQueue("memory://")

    @fq.task(name="adder", queue="maths")
    def add(a: int, b: int) -> int:
        return a + b

    @fq.task_with_context()
    async def greet(ctx: object, name: str) -> str:
        return name

    assert (add.spec.name, add.spec.options.queue, add.spec.kind) == ("adder", "maths", "sync")
    assert add.spec.fn is add.fn
    assert str(add.spec.signature) == "(a: int, b: int) -> int"
    assert (greet.spec.kind, greet.spec.with_context) == ("coroutine", True)
    assert str(greet.spec.signature) == "(name: str) -> str"  # the context is not an argument


def test_worker_resources_open_and_close_the_lifespan() -> None:
    fq = FluxQueue("memory://")
    events: list[str] = []

    @fq.lifespan
    def resources():  # type: ignore[no-untyped-def]
        events.append("open")
        yield {"db": 1}
        events.append("close")

    with pytest.raises(FluxQueueError, match=r"fq\.context is only available while a worker runs"):
        _ = fq.context
    fq.run(fq.worker_resources.open())
    assert fq.worker_resources.is_open and fq.context == {"db": 1}
    fq.run(fq.worker_resources.close())
    fq.run(fq.worker_resources.close())  # closing twice does nothing more
    assert events == ["open", "close"] and not fq.worker_resources.is_open
    with pytest.raises(FluxQueueError, match="only available while a worker runs"):
        _ = fq.context


def test_a_lifespan_that_fails_to_open_is_not_closed() -> None:
    fq = FluxQueue("memory://")
    events: list[str] = []

    class Failing:
        def __enter__(self) -> None:
            raise RuntimeError("no database")

        def __exit__(self, *exc: object) -> None:
            events.append("exit")  # must not run: it never entered

    fq.lifespan(Failing)
    with pytest.raises(RuntimeError, match="no database"):
        fq.run(fq.worker_resources.open())
    fq.run(fq.worker_resources.close())
    assert events == [] and not fq.worker_resources.is_open


def test_without_a_lifespan_the_context_is_none_while_open() -> None:
    fq = FluxQueue("memory://")
    fq.run(fq.worker_resources.open())
    assert fq.context is None
    fq.run(fq.worker_resources.close())
