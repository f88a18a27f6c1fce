"""The shared access token store: cache, KMS encryption, single-writer lease, newest-token-wins."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
import pytest

from devstack.resources import Stack
from intake import clock
from intake.access_token import (
    LEASE_SECONDS,
    REFRESH_AHEAD_SECONDS,
    TOKEN_SK,
    AccessTokenProvider,
    FetchedToken,
)
from intake.keys import token_pk

APP_ID = "wx134c8103faa5a59e"
NOW = 1_765_000_000.0


class CountingFetcher:
    """A token source that issues token-1, token-2 ... and counts its calls."""

    def __init__(self, expires_in: int = 7200, delay: float = 0.0) -> None:
        self.calls = 0
        self.expires_in = expires_in
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> FetchedToken:
        with self._lock:
            self.calls += 1
            number = self.calls
        if self.delay:
            threading.Event().wait(self.delay)
        now = clock.now()
        return FetchedToken(token=f"token-{number}", expires_at=now + self.expires_in, fetched_at=now)


class AtomicTable:
    """A DynamoDB Table resource whose calls run one at a time.

    DynamoDB applies each conditional write atomically; moto's in-process backend has no locking,
    so two threads can both pass the same condition. Serializing the calls restores the guarantee
    the lease relies on.
    """

    def __init__(self, table: Any) -> None:
        self._table = table
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._table, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    current = {"now": NOW}
    monkeypatch.setattr(clock, "now", lambda: current["now"])
    return current


@pytest.fixture
def make_provider(stack: Stack) -> Callable[..., AccessTokenProvider]:
    table = AtomicTable(boto3.resource("dynamodb", region_name="us-east-1").Table(stack.ref("TicketsTable")))
    kms = boto3.client("kms", region_name="us-east-1")
    key_arn = stack.attribute("DataKey", "Arn")

    def make(fetch: Callable[[], FetchedToken]) -> AccessTokenProvider:
        return AccessTokenProvider(
            app_id=APP_ID, table=table, kms=kms, kms_key_id=key_arn, fetch=fetch, sleep=lambda _s: None
        )

    return make


def _token_item(stack: Stack) -> dict[str, Any]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(stack.ref("TicketsTable"))
    return table.get_item(Key={"PK": token_pk(APP_ID), "SK": TOKEN_SK}, ConsistentRead=True)["Item"]


def test_get_fetches_once_and_stores_encrypted(
    stack: Stack, make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    fetcher = CountingFetcher()
    provider = make_provider(fetcher)

    token = provider.get()
    item = _token_item(stack)

    assert token == "token-1"
    assert fetcher.calls == 1
    assert b"token-1" not in item["token_ciphertext"].value
    assert item["token_expires_at"] == Decimal(str(NOW + 7200))
    assert "expires_at" not in item  # the table's TTL attribute would delete the item
    assert "lease_owner" not in item


def test_get_second_instance_reads_store_without_fetch(
    make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    fetcher = CountingFetcher()
    make_provider(fetcher).get()

    token = make_provider(fetcher).get()

    assert token == "token-1"
    assert fetcher.calls == 1


def test_get_serves_memory_cache_without_reading_store(
    stack: Stack, make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    fetcher = CountingFetcher()
    provider = make_provider(fetcher)
    provider.get()
    boto3.resource("dynamodb", region_name="us-east-1").Table(stack.ref("TicketsTable")).delete_item(
        Key={"PK": token_pk(APP_ID), "SK": TOKEN_SK}
    )

    token = provider.get()

    assert token == "token-1"
    assert fetcher.calls == 1


def test_get_refreshes_ahead_of_expiry(
    make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    fetcher = CountingFetcher()
    provider = make_provider(fetcher)
    provider.get()
    frozen_now["now"] = NOW + 7200 - REFRESH_AHEAD_SECONDS + 1

    token = provider.get()

    assert token == "token-2"
    assert fetcher.calls == 2


def test_get_keeps_token_while_more_than_margin_left(
    make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    fetcher = CountingFetcher()
    make_provider(fetcher).get()
    frozen_now["now"] = NOW + 7200 - REFRESH_AHEAD_SECONDS - 60

    token = make_provider(fetcher).get()

    assert token == "token-1"
    assert fetcher.calls == 1


def test_get_same_token_returned_again_does_not_loop(
    make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    # GIVEN a token source that only ever has 100 s left (less than the refresh margin)
    fetcher = CountingFetcher(expires_in=100)
    make_provider(fetcher).get()

    # WHEN other instances ask for the token right after that fetch
    tokens = [make_provider(fetcher).get() for _ in range(3)]

    # THEN they use the stored token instead of fetching again
    assert tokens == ["token-1"] * 3
    assert fetcher.calls == 1


def test_get_concurrent_expired_token_fetches_once(
    stack: Stack, make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    # GIVEN a stored token that has expired and 50 cold instances
    make_provider(CountingFetcher()).get()
    frozen_now["now"] = NOW + 8000
    fetcher = CountingFetcher(delay=0.05)
    providers = [make_provider(fetcher) for _ in range(50)]
    results: list[str] = []
    barrier = threading.Barrier(50)

    def call(provider: AccessTokenProvider) -> None:
        barrier.wait()
        results.append(provider.get())

    # WHEN they all ask for the token at once
    threads = [threading.Thread(target=call, args=(provider,)) for provider in providers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # THEN exactly one of them fetched, and all got the new token
    assert fetcher.calls == 1
    assert len(results) == 50
    assert set(results) == {"token-1"}
    assert int(_token_item(stack)["version"]) == 2


def test_refresh_after_rejection_returns_newer_stored_token(
    make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    fetcher = CountingFetcher()
    stale = make_provider(fetcher)
    stale.get()
    frozen_now["now"] = NOW + 7000
    make_provider(fetcher).get()  # another instance stores token-2

    token = stale.refresh_after_rejection("token-1")

    assert token == "token-2"
    assert fetcher.calls == 2


def test_refresh_after_rejection_fetches_when_stored_is_rejected(
    make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    fetcher = CountingFetcher()
    provider = make_provider(fetcher)
    provider.get()
    frozen_now["now"] = NOW + 1  # within the minimum fetch interval: a rejection still fetches

    token = provider.refresh_after_rejection("token-1")

    assert token == "token-2"
    assert fetcher.calls == 2


def test_refresh_takes_over_lease_of_crashed_instance(
    stack: Stack, make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    # GIVEN an expired token and a lease left behind by an instance that crashed mid-refresh
    make_provider(CountingFetcher()).get()
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(stack.ref("TicketsTable"))
    frozen_now["now"] = NOW + 8000
    table.update_item(
        Key={"PK": token_pk(APP_ID), "SK": TOKEN_SK},
        UpdateExpression="SET lease_owner = :owner, lease_until = :until",
        ExpressionAttributeValues={":owner": "crashed", ":until": Decimal(str(NOW + 8000 - 1))},
    )
    fetcher = CountingFetcher()

    token = make_provider(fetcher).get()

    assert token == "token-1"
    assert fetcher.calls == 1
    assert "lease_owner" not in _token_item(stack)


def test_slow_fetch_never_replaces_newer_token(
    stack: Stack, make_provider: Callable[..., AccessTokenProvider], frozen_now: dict[str, float]
) -> None:
    # GIVEN instance A that starts a fetch and stalls past its lease
    a_started = threading.Event()
    a_release = threading.Event()

    def slow_fetch() -> FetchedToken:
        fetched_at = clock.now()
        a_started.set()
        a_release.wait(10)
        return FetchedToken(token="token-old", expires_at=fetched_at + 7200, fetched_at=fetched_at)

    a_result: list[str] = []
    a = threading.Thread(target=lambda: a_result.append(make_provider(slow_fetch).get()))
    a.start()
    a_started.wait(10)

    # WHEN instance B, after A's lease has run out, stores a newer token and then A finishes
    frozen_now["now"] = NOW + LEASE_SECONDS + 1
    b_token = make_provider(CountingFetcher()).get()
    a_release.set()
    a.join(10)

    # THEN the store and A keep B's newer token
    assert b_token == "token-1"
    assert a_result == ["token-1"]
    assert int(_token_item(stack)["version"]) == 1
