"""In-process fan-out of committed events to live subscribers."""

from baton_server.bus.fanout import EventBus, Subscription

__all__ = ["EventBus", "Subscription"]
