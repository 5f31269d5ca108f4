"""Everything a plugin author imports, in one place: ``from fluxqueue.plugin_api import ...``.

A broker plugin subclasses :class:`Broker` and writes the primitives of each group (see
``docs/plugins.md``); a serializer plugin subclasses :class:`Serializer`; both register
through ``@hookimpl``. The names here are the stable plugin API: the plugins that ship with
fluxqueue (``plugins/``) import nothing else, and a test pins this list.
"""

from __future__ import annotations

from fluxqueue._url import float_option, mask_url, query_options
from fluxqueue.backends.base import (
    DEFAULT_VISIBILITY_TIMEOUT,
    FINAL_STATUSES,
    AbortOutcome,
    Aborts,
    Broker,
    BrokerStats,
    Coordination,
    DeadLetter,
    QueueAdmin,
    QueueStats,
    StateStore,
    Transport,
    WorkerInfo,
    WorkerRegistry,
)
from fluxqueue.backends.coordination import check_claim, check_release, check_tally
from fluxqueue.errors import (
    BrokerConnectionError,
    BrokerError,
    ConfigurationError,
    FluxQueueError,
    MessageError,
    SerializationError,
    UnsupportedOperation,
)
from fluxqueue.message import Delivery, Message
from fluxqueue.plugins.hookspecs import Register, hookimpl
from fluxqueue.serializers.base import Serializer
from fluxqueue.state import State, decode_state, encode_state, initial_state

__all__ = [  # noqa: RUF022 - grouped by purpose, sorted within each group
    # registering a plugin
    "Register",
    "hookimpl",
    # the broker contract: the whole, and its groups
    "Aborts",
    "Broker",
    "Coordination",
    "QueueAdmin",
    "StateStore",
    "Transport",
    "WorkerRegistry",
    # what a broker receives and returns
    "AbortOutcome",
    "BrokerStats",
    "DeadLetter",
    "Delivery",
    "Message",
    "QueueStats",
    "State",
    "WorkerInfo",
    # helpers a broker needs
    "DEFAULT_VISIBILITY_TIMEOUT",
    "FINAL_STATUSES",
    "check_claim",
    "check_release",
    "check_tally",
    "decode_state",
    "encode_state",
    "float_option",
    "initial_state",
    "mask_url",
    "query_options",
    # serializers
    "Serializer",
    # errors a plugin raises
    "BrokerConnectionError",
    "BrokerError",
    "ConfigurationError",
    "FluxQueueError",
    "MessageError",
    "SerializationError",
    "UnsupportedOperation",
]
