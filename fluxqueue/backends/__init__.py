"""Brokers: where messages wait, leases live and results are kept.

The contract is split by concern (see :mod:`.base` for the table); plugin authors import
everything they need from :mod:`fluxqueue.plugin_api`.
"""

from fluxqueue.backends.base import Broker

__all__ = ["Broker"]
