"""Audio files in the instance folder (the embedded default).

Browsers reach the files through signed, expiring URLs served by audiofind/routes/storage.py (at UPLOAD_PATH and
PLAYBACK_PATH):
the token carries the key (and for uploads the content type and the largest size allowed),
signed with the app's SECRET_KEY, so the routes need no per-upload state.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from audiofind.config import data_dir
from audiofind.hookspecs import hookimpl
from audiofind.storage.base import Storage, StorageError

UPLOAD_SALT = "audiofind.storage.upload"
PLAYBACK_SALT = "audiofind.storage.playback"
# Where routes/storage.py serves the signed URLs, below the app's root.
UPLOAD_PATH = "/storage/upload/"
PLAYBACK_PATH = "/storage/audio/"

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

    def put_file(self, local_path, key, content_type="", filename=""):
        """Copy a file in under ``key``; the user's ``filename`` is not needed here (the index keeps it)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        try:
            shutil.copyfile(local_path, partial)
            partial.replace(target)
        except BaseException:  # a full disk, say: nothing half-written stays
            partial.unlink(missing_ok=True)
            raise

    def write_stream(self, key: str, stream, max_size: int) -> int:
        """Copy a byte stream to ``key`` atomically; StorageError (nothing written) past ``max_size`` bytes."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
        written = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = stream.read(1024 * 1024)
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > max_size:
                        raise StorageError(f"upload for {key!r} is larger than the {max_size} bytes announced")
                    out.write(chunk)
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        return written

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

    def list_keys(self, prefix):
        folder = self.root / prefix
        if not folder.is_dir():
            return
        for path in folder.rglob("*"):
            if path.is_file():
                try:
                    modified = path.stat().st_mtime
                except FileNotFoundError:  # consumed meanwhile
                    continue
                yield path.relative_to(self.root).as_posix(), modified

    # -- signed URLs, relative to the app's root (APPLICATION_ROOT)
    def _serializer(self, salt):
        return URLSafeTimedSerializer(self.config["SECRET_KEY"], salt=salt)

    def _url(self, path, token):
        return (self.config.get("APPLICATION_ROOT") or "/").rstrip("/") + path + token

    def upload_target(self, key, content_type, size):
        self.path(key)  # reject a bad key now rather than at upload time
        content_type, size = self.checked_upload(content_type, size)
        token = self._serializer(UPLOAD_SALT).dumps({"key": key, "type": content_type, "size": size})
        return {
            "upload_url": self._url(UPLOAD_PATH, token),
            "method": "PUT",
            "headers": {"Content-Type": content_type},
        }

    def playback_url(self, key):
        self.path(key)
        token = self._serializer(PLAYBACK_SALT).dumps({"key": key})
        return self._url(PLAYBACK_PATH, token)

    def read_token(self, token: str, salt: str, max_age: int) -> dict:
        """The claims of a token made by upload_target/playback_url; StorageError when forged or expired."""
        try:
            return self._serializer(salt).loads(token, max_age=max_age)
        except SignatureExpired:
            raise StorageError("this link has expired") from None
        except BadSignature:
            raise StorageError("this link is not valid") from None

    def check(self):
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"audio folder {self.root} is not writable")


@hookimpl
def register_storages():
    return [LocalStorage]
