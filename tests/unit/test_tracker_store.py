"""The tracker's RocksDB sizing reaches Faust's store options and opens a real database."""

from __future__ import annotations

from pathlib import Path

from faust.stores.rocksdb import RocksDBOptions

from vsa.runtime.settings import load_settings
from vsa.services.tracker.config import TrackerSettings
from vsa.services.tracker.service import rocksdb_options


def test_rocksdb_sizes_are_faust_options_and_open_a_database(tmp_path: Path) -> None:
    settings = load_settings(
        TrackerSettings, None, rocksdb_block_cache_mib=32, rocksdb_write_buffer_mib=8
    )
    options = RocksDBOptions(**rocksdb_options(settings), use_rocksdict=True)
    assert options.extra_options == {}  # every key is one Faust knows (no silent typo)
    assert options.block_cache_size == 32 << 20
    assert options.write_buffer_size == 8 << 20
    assert options.max_write_buffer_number == 2
    db = options.open(tmp_path / "state")
    db[b"cam-1"] = b"state"
    assert db[b"cam-1"] == b"state"
    db.close()


def test_defaults_stay_far_below_fausts() -> None:
    options = rocksdb_options(load_settings(TrackerSettings, None))
    per_partition = options["block_cache_size"] + 2 * options["write_buffer_size"]
    assert per_partition == 96 << 20  # Faust's defaults: 2 GiB cache + 3 x 64 MiB memtables
