"""Serializers encode task arguments and results. See :class:`base.Serializer`."""

from fluxqueue.serializers.base import Serializer

__all__ = ["Serializer"]
