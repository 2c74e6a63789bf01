"""The services of one process (an app, a worker, a command): built lazily, once, from configuration.

The one place backends are built: the app, the CLI, the workers, `migrate` and `move-up` all go through here."""

from functools import cached_property

from redis import Redis

from audiofind import map_store
from audiofind.catalog import Catalog
from audiofind.plugins import backend_class, make_plugin_manager


class QueueUnavailable(RuntimeError):
    """Redis is not configured or cannot be reached; the message says what to do."""


class Services:
    def __init__(self, config, plugins=()):
        self.config = config
        self.pm = make_plugin_manager(plugins, entry_points=config.get("ENTRY_POINT_PLUGINS", True))

    @cached_property
    def embedder(self):
        return self._backend("register_embedders", "EMBEDDER")

    @cached_property
    def index(self):
        return self._backend("register_indexes", "INDEX")

    @cached_property
    def storage(self):
        return self._backend("register_storages", "STORAGE")

    @cached_property
    def catalog(self):
        return Catalog(self.config, self.pm, index=self.index, storage=self.storage, embedder=lambda: self.embedder)

    @cached_property
    def map_store(self):
        """Where the catalog map is kept (map_store.py), with the index's catalog; None for an index without one."""
        return map_store.for_index(self.index)

    @cached_property
    def redis(self) -> Redis:
        """The job queue's Redis client (its pool connects lazily, so it is safe to create before a fork)."""
        url = self.config.get("REDIS_URL")
        if not url:
            raise QueueUnavailable(
                "no job queue: set AUDIOFIND_REDIS_URL, or run `audiofind serve`, which starts Redis for you"
            )
        return Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)

    def _backend(self, hook, setting):
        return backend_class(self.pm, hook, self.config[setting], setting)(self.config)
