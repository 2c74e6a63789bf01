"""The services of one app (or one worker process): built lazily, once, from configuration."""

from functools import cached_property

from audiofind.plugins import backend_class, make_plugin_manager


class Services:
    def __init__(self, config, plugins=()):
        self.config = config
        self.pm = make_plugin_manager(plugins)

    @cached_property
    def embedder(self):
        cls = backend_class(self.pm, "register_embedders", self.config["EMBEDDER"], "EMBEDDER")
        return cls(self.config)

    @cached_property
    def index(self):
        cls = backend_class(self.pm, "register_indexes", self.config["INDEX"], "INDEX")
        return cls(self.config)

    @cached_property
    def storage(self):
        cls = backend_class(self.pm, "register_storages", self.config["STORAGE"], "STORAGE")
        return cls(self.config)

    @cached_property
    def catalog(self):
        from audiofind.catalog import Catalog

        return Catalog(self.config, self.pm, index=self.index, storage=self.storage, embedder=lambda: self.embedder)
