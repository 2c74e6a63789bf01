"""Audio files in the instance folder (the embedded default)."""

import contextlib
import shutil
from pathlib import Path

from audiofind.config import data_dir
from audiofind.hookspecs import hookimpl
from audiofind.storage.base import Storage, StorageError


class LocalStorage(Storage):
    name = "local"

    def __init__(self, config):
        super().__init__(config)
        self.root = data_dir(config) / "audio"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise StorageError(f"invalid storage key {key!r}")
        return path

    def put_file(self, local_path, key, content_type=""):
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(local_path, partial)
        partial.replace(target)

    @contextlib.contextmanager
    def local_copy(self, key):
        path = self.path(key)
        if not path.is_file():
            raise StorageError(f"no stored file for key {key!r}")
        yield path

    def exists(self, key):
        return self.path(key).is_file()

    def size(self, key):
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise StorageError(f"no stored file for key {key!r}") from None

    def delete(self, key):
        self.path(key).unlink(missing_ok=True)


@hookimpl
def register_storages():
    return [LocalStorage]
