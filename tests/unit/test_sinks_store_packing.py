"""The sink's Redis connections pack commands in one join (sinks.store): the same protocol
bytes as redis-py's own packer, for every argument type it accepts, and the same refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from sinks.store import Store

FAST = Store("redis://127.0.0.1:1/0").redis.connection_pool.connection_class()
PLAIN = Connection()

# 7000-7001 characters (over redis-py's 6000-byte buffer cutoff): a short text repeated, as
# st.text(min_size=7000) draws every character (that was most of this file's time)
_over_the_cutoff = st.builds(
    lambda text, size: (text * size)[:size], st.text(min_size=1, max_size=20),
    st.integers(7000, 7001),
)
_args = st.lists(
    st.text(max_size=20) | st.binary(max_size=20) | st.integers() | st.floats(allow_nan=False)
    | st.builds(bytearray, st.binary(max_size=8)) | _over_the_cutoff,
    max_size=40,
)


def _packed(conn: Connection, *args: object) -> bytes:
    return b"".join(conn.pack_command(*args))


def test_the_store_uses_the_one_join_packer() -> None:
    assert type(FAST) is not Connection and isinstance(FAST, Connection)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(["evalsha", "HSET", "CONFIG GET", "get"]), args=_args)
def test_same_bytes_as_redis_py(name: str, args: list[object]) -> None:
    assert _packed(FAST, name, *args) == _packed(PLAIN, name, *args)


def test_memoryviews_and_non_str_command_names_take_redis_pys_path() -> None:
    for args in ((b"GET", "k"), ("SET", "k", memoryview(b"v")), (b"CONFIG GET", "x")):
        assert _packed(FAST, *args) == _packed(PLAIN, *args)


@pytest.mark.parametrize("bad", [True, None, object()])
def test_values_redis_py_refuses_are_refused(bad: object) -> None:
    for conn in (FAST, PLAIN):
        with pytest.raises(DataError):
            conn.pack_command("SET", "k", bad)
