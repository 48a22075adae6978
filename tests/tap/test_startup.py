"""Starting the application opens the catalog store ahead of queries."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dpzero.app import create_app
from dpzero.config import Settings


def test_the_store_is_opened_in_the_background_at_start(tiny_store: Path, tmp_path: Path) -> None:
    app = create_app(Settings(store=tiny_store, state_dir=tmp_path / "state"))

    async def started() -> list:
        async with app.router.lifespan_context(app):
            store = app.state.tap_service.engine.store
            tables = list(store._tables.values())
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                opened = [p.meta is not None for t in tables for p in t.partitions]
                if all(opened):
                    break
                await asyncio.sleep(0.05)
            return tables

    # A thread of its own: an earlier test's event loop may still run in this one.
    with ThreadPoolExecutor(1) as pool:
        tables = pool.submit(asyncio.run, started()).result()
    assert tables
    # Every footer parsed, every row copy mapped, every objectId index opened.
    assert all(part.meta is not None for table in tables for part in table.partitions)
    for table in tables:
        if table.entry.key_column is not None:
            assert table._index is not None
            assert len(table._rows) == len(table.partitions)
