"""Opening the view at start-up: the current version, or a fresh one in place of an older format."""

from __future__ import annotations

import logging

from query_service.settings import QuerySettings
from query_service.store import statedir
from query_service.store.rocks import RocksPartitionStores, is_database

log = logging.getLogger(__name__)


def open_stores(settings: QuerySettings) -> RocksPartitionStores:
    """The current version of the view; one of an older format (one database for the whole
    view) is replaced by a new, empty version that the consumer builds from the log (not ready
    until it has caught up). The old version stays on disk for the operator to remove.
    """
    version = statedir.current_version(settings.query_state_dir)
    if is_database(version):
        old = version
        version = statedir.new_version(settings.query_state_dir)
        statedir.swap(settings.query_state_dir, version)
        log.warning(
            "%s holds the view in an older format: rebuilding it from the log into %s "
            "(the old version stays on disk for the operator to remove)",
            old,
            version,
        )
    log.info("serving the view in %s", version)
    return RocksPartitionStores(version, settings.orders_topic)
