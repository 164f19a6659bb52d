"""Run directories on shared storage: a local or mounted path, or a URI pyarrow can open.

`cluster.storage` (and `--output`) may be a path, an NFS mount seen by every node, or a URI
such as `s3://bucket/runs`, `gs://bucket/runs` or `file:///mnt/runs`. A URI goes through
`pyarrow.fs.FileSystem.from_uri`, so its options ride in the query string, e.g.
`s3://bucket/runs?endpoint_override=minio:9000&scheme=http` for an S3-compatible server;
credentials come from the usual environment (AWS_ACCESS_KEY_ID, ...).

`location()` turns such a string into a `Path` for a local path (everything behaves as
before) or a `RemotePath`: the handful of `Path` methods the results store uses, on a pyarrow
filesystem. On an object store one PUT replaces an object whole, so files are written there
directly; the local atomic rename (trainers.atomic) has nothing to add.
"""

from __future__ import annotations

import fnmatch
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from search_spaces.errors import StoreError
from trainers.atomic import write_atomically

if TYPE_CHECKING:
    import pyarrow.fs

logger = logging.getLogger(__name__)

PROBE_PREFIX = ".archsearch-probe-"


# How long an unreachable Google Cloud Storage is retried before the run stops.
GCS_RETRY_SECONDS = 20


def is_uri(text: str | Path) -> bool:
    return isinstance(text, str) and "://" in text and not text.startswith("file://")


def location(text: str | Path | RemotePath) -> Path | RemotePath:
    """A `Path` for a local path or file:// URI, a `RemotePath` for any other URI."""
    if isinstance(text, RemotePath | Path):
        return text
    if text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    if not is_uri(text):
        return Path(text)

    import pyarrow.fs

    base = text.split("?", 1)[0]
    opened = text
    if text.startswith("gs://") and "retry_limit_seconds=" not in text:
        # pyarrow's GCS client otherwise retries an unreachable service for 15 minutes.
        opened += ("&" if "?" in text else "?") + f"retry_limit_seconds={GCS_RETRY_SECONDS}"
    try:
        filesystem, path = pyarrow.fs.FileSystem.from_uri(opened)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, OSError) as error:
        raise StoreError(
            f"cluster.storage: cannot open {text} ({_first_line(error)}); use a path, or an "
            "s3://, gs:// or hdfs:// URI pyarrow supports"
        ) from None
    try:
        # One request now, so that a wrong endpoint or missing credentials stop here with one
        # line, not with a traceback from the first write.
        filesystem.get_file_info(path)
    except OSError as error:
        raise StoreError(
            f"cluster.storage: cannot reach {base} ({_first_line(error)}); check the endpoint "
            "(?endpoint_override=HOST:PORT&scheme=http for a local S3) and the credentials"
        ) from None
    return RemotePath(filesystem, path.rstrip("/"), uri=base.rstrip("/"))


class RemotePath:
    """A file or folder on a pyarrow filesystem, with the `Path` methods the store uses."""

    def __init__(self, filesystem: pyarrow.fs.FileSystem, path: str, *, uri: str) -> None:
        self.filesystem = filesystem
        self.path = path  # as the filesystem names it: `bucket/key` on S3
        self.uri = uri  # as the user wrote it, without the query string

    def __truediv__(self, part: str) -> RemotePath:
        return RemotePath(self.filesystem, f"{self.path}/{part}", uri=f"{self.uri}/{part}")

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"RemotePath({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __lt__(self, other: RemotePath) -> bool:
        return self.uri < other.uri

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> RemotePath:
        return RemotePath(
            self.filesystem, self.path.rsplit("/", 1)[0], uri=self.uri.rsplit("/", 1)[0]
        )

    def resolve(self) -> RemotePath:
        return self

    def mkdir(self, *, parents: bool = False, exist_ok: bool = False) -> None:
        self.filesystem.create_dir(self.path, recursive=True)

    def _type(self) -> Any:
        return self.filesystem.get_file_info(self.path).type

    def exists(self) -> bool:
        import pyarrow.fs

        return self._type() != pyarrow.fs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs

        return self._type() == pyarrow.fs.FileType.File

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        import pyarrow.fs

        selector = pyarrow.fs.FileSelector(self.path, allow_not_found=True)
        for info in self.filesystem.get_file_info(selector):
            if info.type == pyarrow.fs.FileType.File and fnmatch.fnmatch(info.base_name, pattern):
                yield self / info.base_name

    def read_bytes(self) -> bytes:
        if not self.is_file():
            raise FileNotFoundError(f"{self.uri} does not exist")
        with self.filesystem.open_input_stream(self.path) as file:
            return file.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def unlink(self, *, missing_ok: bool = False) -> None:
        if not self.is_file():
            if missing_ok:
                return
            raise FileNotFoundError(f"{self.uri} does not exist")
        self.filesystem.delete_file(self.path)


def write_file(path: Path | RemotePath, write: Callable[[IO[bytes]], object]) -> None:
    """Replace `path` whole: a temporary file and a rename locally, a single PUT remotely."""
    if isinstance(path, Path):
        write_atomically(path, write)
        return
    with path.filesystem.open_output_stream(path.path) as file:
        write(file)


def read_parquet(path: Path | RemotePath) -> Any:
    """`pyarrow.parquet.read_table` of a local or remote file."""
    import pyarrow.parquet as pq

    if isinstance(path, Path):
        return pq.read_table(path)
    return pq.read_table(path.path, filesystem=path.filesystem)


def tune_storage(run_dir: Path | RemotePath) -> dict[str, Any]:
    """`storage_path` (and `storage_filesystem`) for Tune's and Ray Train's RunConfig."""
    if isinstance(run_dir, Path):
        return {"storage_path": str(run_dir.resolve())}
    return {"storage_path": run_dir.path, "storage_filesystem": run_dir.filesystem}


def check_storage(run_dir: Path | RemotePath) -> None:
    """Refuse a run directory that cannot be written and read back, or that nodes do not share.

    On a cluster of several nodes a local path must be a mount every node shares: a task on
    each other node looks for a file written here.
    """
    probe = run_dir / f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    token = uuid.uuid4().hex.encode()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_file(probe, lambda file: file.write(token))
        if probe.read_bytes() != token:
            raise OSError("read back something else than was written")
    except (OSError, StoreError) as error:
        raise StoreError(
            f"cluster.storage: cannot write and read back {run_dir} ({_first_line(error)}); "
            "check the path or URI and its credentials"
        ) from None

    try:
        blind = _nodes_not_seeing(probe, token)
    finally:
        probe.unlink(missing_ok=True)
    if blind:
        raise StoreError(
            f"cluster.storage: {run_dir} is not shared: node {blind[0]} cannot read what "
            "this machine wrote there; use a folder every node mounts, or an s3:// or gs:// URI"
        )


def _nodes_not_seeing(probe: Path | RemotePath, token: bytes) -> list[str]:
    """Addresses of the other live nodes of the connected Ray that cannot read `probe`."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not ray.is_initialized():
        return []
    here = ray.get_runtime_context().get_node_id()
    others = [n for n in ray.nodes() if n["Alive"] and n["NodeID"] != here]
    if not others:
        return []

    @ray.remote(num_cpus=0)
    def sees(path: Path | RemotePath) -> bool:
        try:
            return path.read_bytes() == token
        except OSError:
            return False

    checks = [
        sees.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(probe)
        for n in others
    ]
    return [
        f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})"
        for n, seen in zip(others, ray.get(checks), strict=True)
        if not seen
    ]


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0][:160]
