"""Fixtures of the gateway tests: a throwaway mosquitto broker and independent subscribers (tests/mosquitto.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mosquitto import PASSWORD, Mosquitto, Subscriber


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A running broker of its own for one test (no retained message survives from another test)."""
    broker = Mosquitto()
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture
def subscribe(mosquitto: Mosquitto) -> Iterator[Callable[..., Subscriber]]:
    """Start ``mosquitto_sub`` on the test's broker (``subscribe(topic="ekinerja/#")``); ended after the test."""
    started: list[Subscriber] = []

    def start(topic: str = "ekinerja/#", password: str = PASSWORD) -> Subscriber:
        subscriber = Subscriber(mosquitto, topic, password)
        started.append(subscriber)
        return subscriber

    yield start
    for subscriber in started:
        subscriber.close()
