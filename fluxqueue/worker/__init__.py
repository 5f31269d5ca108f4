"""The worker runtime, the same for every broker."""

from fluxqueue.worker.runtime import Worker

__all__ = ["Worker"]
