"""Brokers: where messages wait, leases live and results are kept. See :mod:`.base`."""

from fluxqueue.backends.base import Broker

__all__ = ["Broker"]
