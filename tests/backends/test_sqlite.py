from __future__ import annotations

from pathlib import Path

import pytest

from fluxqueue.backends.sqlite import SQLiteBroker
from fluxqueue.testing.contract import BrokerContract, MakeBroker


class TestSQLiteBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self, tmp_path: Path) -> MakeBroker:
        def make(visibility_timeout: float = 30.0) -> SQLiteBroker:
            return SQLiteBroker(
                f"sqlite:///{tmp_path}/q.db?visibility_timeout={visibility_timeout}"
            )

        return make
