"""Audio files in an S3 bucket (production): private objects, presigned URLs for the browser.

Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile,
an instance role); the bucket and endpoint from AUDIOFIND_S3_*. Objects are never public: the
browser uploads with a presigned PUT and plays with a presigned GET that expires soon.
"""

import contextlib
import os
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from audiofind.hookspecs import hookimpl
from audiofind.storage.base import Storage, StorageError, content_type_for


class S3Storage(Storage):
    name = "s3"

    def __init__(self, config):
        super().__init__(config)
        self.bucket = config.get("S3_BUCKET") or ""
        if not self.bucket:
            raise StorageError("STORAGE is s3 but no bucket is set: set AUDIOFIND_S3_BUCKET")
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.config.get("S3_ENDPOINT_URL") or None,
                region_name=self.config.get("S3_REGION") or None,
                # SigV4 signs the Content-Type (and Content-Length) of presigned PUTs.
                config=Config(
                    signature_version="s3v4",
                    connect_timeout=5,
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
        return self._client

    def _fail(self, exc, key=None) -> StorageError:
        """A StorageError that says what went wrong in words an operator can act on."""
        from botocore.exceptions import ClientError, NoCredentialsError

        where = f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound") and key:
                return StorageError(f"no stored file for key {key!r} ({where})")
            if code in ("NoSuchBucket",) or (code == "404" and not key):
                return StorageError(f"bucket {self.bucket!r} does not exist (AUDIOFIND_S3_BUCKET)")
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return StorageError(f"access denied to {where}: check the AWS credentials and bucket policy")
            return StorageError(f"S3 error {code} on {where}: {exc}", transient=code.startswith("5") or "Slow" in code)
        if isinstance(exc, NoCredentialsError):
            return StorageError("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile/role")
        endpoint = self.config.get("S3_ENDPOINT_URL") or "AWS S3"
        return StorageError(f"cannot reach {endpoint} for {where}: {exc}", transient=True)

    def _head(self, key):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, key) from None

    def put_file(self, local_path, key, content_type="", filename=""):
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {}
        if content_type:
            extra["ContentType"] = content_type
        if filename:
            # User metadata must be ASCII; the original name is kept percent-encoded.
            extra["Metadata"] = {"filename": quote(filename, safe="")}
        try:
            self.client.upload_file(str(local_path), self.bucket, key, ExtraArgs=extra)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, key) from None

    @contextlib.contextmanager
    def local_copy(self, key):
        from botocore.exceptions import BotoCoreError, ClientError

        suffix = PurePosixPath(key).suffix
        fd, name = tempfile.mkstemp(prefix="audiofind-", suffix=suffix)
        path = Path(name)
        try:
            try:
                with os.fdopen(fd, "wb") as out:
                    self.client.download_fileobj(self.bucket, key, out)
            except (BotoCoreError, ClientError) as exc:
                raise self._fail(exc, key) from None
            yield path
        finally:
            path.unlink(missing_ok=True)

    def exists(self, key):
        try:
            self._head(key)
        except StorageError as exc:
            if str(exc).startswith("no stored file"):
                return False
            raise
        return True

    def size(self, key):
        return int(self._head(key)["ContentLength"])

    def delete(self, key):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, key) from None

    def list_keys(self, prefix):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"], item["LastModified"].timestamp()
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc) from None

    def ensure_upload_expiry(self, prefix, days):
        """A lifecycle rule that deletes what is left under the uploads prefix after ``days`` (S3 counts whole
        days; the workers' sweeper removes what is left sooner). Other rules of the bucket are kept."""
        from botocore.exceptions import BotoCoreError, ClientError

        rule = {"ID": "audiofind-uploads-expire", "Filter": {"Prefix": prefix}, "Status": "Enabled",
                "Expiration": {"Days": int(days)}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
        try:
            try:
                rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            rules = [r for r in rules if r.get("ID") != rule["ID"]] + [rule]
            self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket, LifecycleConfiguration={"Rules": rules})
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc) from None
        return rule

    def upload_target(self, key, content_type, size):
        content_type, size = self.checked_upload(content_type, size)
        # Content-Type and Content-Length become signed headers: S3 refuses a PUT with another type
        # or another length. The browser sets Content-Length itself (scripts may not), so only
        # Content-Type is returned in the headers to send.
        url = self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size},
            ExpiresIn=int(self.config.get("UPLOAD_URL_EXPIRES") or 900),
            HttpMethod="PUT",
        )
        return {"upload_url": url, "method": "PUT", "headers": {"Content-Type": content_type}}

    def playback_url(self, key):
        # S3 answers with the type given here, whatever the object was stored with: only audio types play.
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type_for(key)},
            ExpiresIn=int(self.config.get("PLAYBACK_URL_EXPIRES") or 3600),
        )

    def check(self):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc) from None


@hookimpl
def register_storages():
    return [S3Storage]
