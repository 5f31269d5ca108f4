import pytest

from fluxqueue.backends.memory import MemoryBroker
from fluxqueue.errors import ConfigurationError
from fluxqueue.testing.contract import BrokerContract, MakeBroker


class TestMemoryBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self) -> MakeBroker:
        # One store per test; every "new instance" of the factory is that same store.
        shared: dict[float, MemoryBroker] = {}

        def make(visibility_timeout: float = 30.0) -> MemoryBroker:
            if not shared:
                shared[0] = MemoryBroker(f"memory://?visibility_timeout={visibility_timeout}")
            return shared[0]

        return make


def test_unknown_option_is_named() -> None:
    with pytest.raises(ConfigurationError, match="colour"):
        MemoryBroker("memory://?colour=blue")


def test_bad_visibility_timeout_is_explained() -> None:
    with pytest.raises(ConfigurationError, match="visibility_timeout must be a positive number"):
        MemoryBroker("memory://?visibility_timeout=soon")
