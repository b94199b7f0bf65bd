"""Coalescing (``hostup_pulumi._batch``): lookups asked for together share one request, and
every caller still gets its own value or its own error."""

from __future__ import annotations

import asyncio

import pytest

from hostup_pulumi._batch import Coalescer


class Backend:
    """A fetch_many / fetch_one pair that records what it was asked; ``bad`` keys fail."""

    def __init__(self, bad: frozenset[str] = frozenset()) -> None:
        self.bad = bad
        self.many: list[list[str]] = []
        self.one: list[str] = []

    async def fetch_many(self, keys: list[str]) -> list[str]:
        self.many.append(keys)
        await asyncio.sleep(0)
        if self.bad & set(keys):
            raise RuntimeError(f"one of {keys} failed")
        return [key.upper() for key in keys]

    async def fetch_one(self, key: str) -> str:
        self.one.append(key)
        await asyncio.sleep(0)
        if key in self.bad:
            raise LookupError(f"{key} failed")
        return key.upper()


def gather(coalescer: Coalescer[str, str], keys: list[str]) -> list[object]:
    async def run() -> list[object]:
        return await asyncio.gather(*(coalescer.get(k) for k in keys), return_exceptions=True)

    return asyncio.run(run())


def test_keys_asked_together_are_one_request_in_their_order() -> None:
    backend = Backend()
    coalescer = Coalescer(backend.fetch_many, backend.fetch_one)

    assert gather(coalescer, ["a", "b", "c"]) == ["A", "B", "C"]
    assert backend.many == [["a", "b", "c"]]
    assert backend.one == []


def test_a_lone_key_is_fetched_alone() -> None:
    backend = Backend()
    coalescer = Coalescer(backend.fetch_many, backend.fetch_one)

    assert gather(coalescer, ["a"]) == ["A"]
    assert (backend.many, backend.one) == ([], ["a"])


def test_no_request_carries_more_than_the_limit() -> None:
    backend = Backend()
    coalescer = Coalescer(backend.fetch_many, backend.fetch_one, limit=2)

    assert gather(coalescer, ["a", "b", "c", "d", "e"]) == ["A", "B", "C", "D", "E"]
    assert backend.many == [["a", "b"], ["c", "d"]]
    assert backend.one == ["e"]


def test_keys_asked_after_the_window_go_in_a_later_request() -> None:
    backend = Backend()
    coalescer = Coalescer(backend.fetch_many, backend.fetch_one, window=0.01)

    async def run() -> list[str]:
        first = [asyncio.ensure_future(coalescer.get(k)) for k in ("a", "b")]
        await asyncio.sleep(0.05)
        second = [asyncio.ensure_future(coalescer.get(k)) for k in ("c", "d")]
        return list(await asyncio.gather(*first, *second))

    assert asyncio.run(run()) == ["A", "B", "C", "D"]
    assert backend.many == [["a", "b"], ["c", "d"]]


def test_when_the_request_fails_each_caller_gets_its_own_result_or_error() -> None:
    backend = Backend(bad=frozenset({"b"}))
    coalescer = Coalescer(backend.fetch_many, backend.fetch_one)

    a, b, c = gather(coalescer, ["a", "b", "c"])

    assert (a, c) == ("A", "C")
    assert isinstance(b, LookupError)
    assert str(b) == "b failed"  # its own error, not the batch's
    assert backend.many == [["a", "b", "c"]]
    assert backend.one == ["a", "b", "c"]


def test_an_answer_of_the_wrong_length_is_not_trusted() -> None:
    async def short(keys: list[str]) -> list[str]:
        return [k.upper() for k in keys[:-1]]

    backend = Backend()
    coalescer = Coalescer(short, backend.fetch_one)

    assert gather(coalescer, ["a", "b"]) == ["A", "B"]
    assert backend.one == ["a", "b"]


@pytest.mark.parametrize("keys", [["a", "a"], ["x", "a", "x"]])
def test_the_same_key_twice_is_answered_twice(keys: list[str]) -> None:
    backend = Backend()
    coalescer = Coalescer(backend.fetch_many, backend.fetch_one)

    assert gather(coalescer, keys) == [k.upper() for k in keys]
