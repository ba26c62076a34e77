"""The users table's RocksDB memory bounds (STREAMREC_USERS__WRITE_BUFFER_MB,
__WRITE_BUFFERS, __BLOCK_CACHE_MB) reach every partition database its store opens.

Faust's own defaults (64 MiB x 3 write buffers and a 2 GiB block cache per partition
database) let a soaked worker grow for an hour (README, "Soak")."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.app import create_app, users_store_memory, users_store_options
from streams.settings import Settings, UsersConfig

MIB = 1024 * 1024


def rocksdb_options_file(db_dir: Path) -> dict[str, str]:
    """``name=value`` lines of the newest OPTIONS file RocksDB wrote in ``db_dir`` (what
    the database was really opened with)."""
    newest = max(db_dir.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
    pairs = (line.strip().split("=", 1) for line in newest.read_text().splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def test_the_memory_settings_reach_each_partition_database(tmp_path: Path) -> None:
    users = UsersConfig(write_buffer_mb=4, write_buffers=3, block_cache_mb=16)
    store = create_app(Settings(data_dir=tmp_path, users=users)).users.data
    for partition in (0, 1):
        db = store._db_for_partition(partition)
        try:
            assert db.property_int_value("rocksdb.block-cache-capacity") == 16 * MIB
            written = rocksdb_options_file(store.partition_path(partition))
        finally:
            db.close()
        assert written["write_buffer_size"] == str(4 * MIB)
        assert written["max_write_buffer_number"] == "3"


def test_the_defaults_are_small() -> None:
    assert users_store_options(UsersConfig()) == {
        "write_buffer_size": 8 * MIB,
        "max_write_buffer_number": 2,
        "block_cache_size": 8 * MIB,
    }


def test_the_memory_store_takes_the_same_table(tmp_path: Path) -> None:
    store = create_app(Settings(data_dir=tmp_path, table_store="memory://")).users.data
    store[b"u"] = b"{}"
    assert store[b"u"] == b"{}"


def test_the_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_USERS__BLOCK_CACHE_MB", "64")
    monkeypatch.setenv("STREAMREC_USERS__WRITE_BUFFER_MB", "2")
    users = Settings().users
    assert (users.block_cache_mb, users.write_buffer_mb, users.write_buffers) == (64, 2, 2)


@pytest.mark.parametrize(
    "given",
    [{"write_buffers": 1}, {"write_buffer_mb": 0}, {"block_cache_mb": 0}],
)
def test_unusable_bounds_are_rejected(given: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        UsersConfig.model_validate(given)


def test_the_store_reports_what_its_databases_hold_in_memory(tmp_path: Path) -> None:
    users = create_app(Settings(data_dir=tmp_path)).users
    assert users_store_memory(users) == {}  # nothing opened yet
    dbs = [users.data._db_for_partition(p) for p in (0, 1)]
    try:
        empty = users_store_memory(users)
        for n in range(2000):
            dbs[n % 2].put(f"user-{n}".encode(), b"x" * 1000)
        written = users_store_memory(users)
    finally:
        for db in dbs:
            db.close()
    assert set(written) == {"memtables", "block_cache", "table_readers"}
    assert written["memtables"] >= empty["memtables"] + 2000 * 1000  # both databases counted


def test_a_memory_store_reports_nothing(tmp_path: Path) -> None:
    users = create_app(Settings(data_dir=tmp_path, table_store="memory://")).users
    assert users_store_memory(users) == {}
