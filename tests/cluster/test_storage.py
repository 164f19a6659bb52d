"""Run directories on shared storage: the results store on an S3-compatible server, and checks.

The S3 server is moto's, started on the loopback address for this module; nothing leaves the
machine. The URI carries the endpoint the way a user's would (`?endpoint_override=...`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.storage import RemotePath, check_storage, location
from cluster.store import read_table
from search_spaces.errors import StoreError
from tests.cluster.test_store import epoch_rows, fold_rows, make_store, trial_row

BUCKET = "archsearch-runs"


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def s3_uri(s3_endpoint, monkeypatch, request) -> str:
    import pyarrow.fs

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    query = f"endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    filesystem, _ = pyarrow.fs.FileSystem.from_uri(
        f"s3://{BUCKET}?{query}&allow_bucket_creation=true"
    )
    filesystem.create_dir(BUCKET)
    # The server lives for the module: each test writes its own run.
    return f"s3://{BUCKET}/runs/{request.node.name.split('[')[0]}?{query}"


def test_store_round_trip_on_s3(s3_uri):
    store = make_store(s3_uri)
    store.write_trial(trial=trial_row("t1"), folds=fold_rows("t1"), epochs=epoch_rows("t1"))
    store.write_trial(
        trial=trial_row("t2", trial_number=1, accuracy_mean=0.5),
        folds=fold_rows("t2"),
        epochs=epoch_rows("t2"),
    )

    # Read back by a reader that knows only the URI, as `archsearch results` would.
    trials = read_table(s3_uri, "trials")
    assert trials.column("trial_id").to_pylist() == ["t1", "t2"]
    assert trials.column("accuracy_mean").to_pylist() == [0.875, 0.5]
    assert read_table(s3_uri, "folds").num_rows == len(fold_rows("t1")) * 2
    assert read_table(s3_uri, "epochs").num_rows == len(epoch_rows("t1")) * 2

    # Written in place, one object per part: no temporary dot-files left behind.
    run = location(s3_uri)
    assert isinstance(run, RemotePath)
    assert sorted(p.name for p in (run / "trials").glob("*")) == [
        "part-t1.parquet",
        "part-t2.parquet",
    ]
    assert str(run) == f"s3://{BUCKET}/runs/test_store_round_trip_on_s3"


def test_rewriting_a_trial_on_s3_replaces_it(s3_uri):
    store = make_store(s3_uri)
    store.write_trial(trial=trial_row("t1"), folds=fold_rows("t1"), epochs=epoch_rows("t1"))
    store.write_trial(trial=trial_row("t1", status="failed", error="boom"), folds=[], epochs=[])

    trials = read_table(s3_uri, "trials").to_pylist()
    assert [(t["status"], t["error"]) for t in trials] == [("failed", "boom")]
    assert read_table(s3_uri, "folds").num_rows == 0


def test_check_storage_accepts_s3_and_leaves_no_probe(s3_uri):
    check_storage(location(s3_uri))
    assert list(location(s3_uri).glob(".archsearch-probe-*")) == []


def test_check_storage_names_a_missing_bucket(s3_uri):
    missing = s3_uri.replace(BUCKET, "no-such-bucket")
    with pytest.raises(
        StoreError,
        match=r"^cluster\.storage: cannot write and read back s3://no-such-bucket/runs/\w+ \(",
    ):
        check_storage(location(missing))


def test_check_storage_refuses_a_path_under_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(
        StoreError, match=r"^cluster\.storage: cannot write and read back .*a-file/run"
    ):
        check_storage(blocker / "run")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("runs/x", Path("runs/x")), ("file:///mnt/runs/x", Path("/mnt/runs/x"))],
)
def test_local_locations_stay_paths(text, expected):
    assert location(text) == expected


def test_unknown_uri_scheme_is_one_line():
    with pytest.raises(StoreError, match=r"^cluster\.storage: cannot open nosuch://bucket/x \("):
        location("nosuch://bucket/x")


def test_unreachable_s3_endpoint_is_one_line_for_results(monkeypatch, capsys):
    from cluster.cli import main

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # Nothing listens on port 1 of the loopback address.
    uri = "s3://bucket/runs/x?endpoint_override=127.0.0.1:1&scheme=http&region=us-east-1"

    assert main(["results", uri]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("archsearch: cluster.storage: cannot reach s3://bucket/runs/x (")


def test_gcs_without_credentials_stops_within_its_retry_limit(monkeypatch):
    import time

    import cluster.storage

    monkeypatch.setattr(cluster.storage, "GCS_RETRY_SECONDS", 2)
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"^cluster\.storage: cannot reach gs://bucket/x \("):
        location("gs://bucket/x")
    assert time.monotonic() - started < 30


def _spec_file(tmp_path: Path) -> Path:
    import yaml

    spec = {
        "name": "s3-run",
        "data": {"dataset": "digits", "subset": 200},
        "model": {"family": "mlp", "depth": 1, "width": {"choice": [8, 16]}},
        "training": {"epochs": 2},
        "evaluation": {"folds": 2, "metric": "accuracy"},
        "search": {"strategy": "grid"},
        "tracking": {"tensorboard": False},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_search_writes_its_run_directory_to_s3(s3_uri, local_ray, tmp_path, capsys):
    """A whole search (2 in-process trials, about 30 s) with --output on the S3 server."""
    from cluster.cli import main

    code = main(["run", str(_spec_file(tmp_path)), "--output", s3_uri, "--no-export", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out

    run = location(s3_uri)
    trials = read_table(s3_uri, "trials").to_pylist()
    assert sorted(t["param.model.width"] for t in trials) == [8, 16]
    assert {t["status"] for t in trials} == {"completed"}
    assert read_table(s3_uri, "epochs").num_rows == 2 * 2 * 2  # trials x folds x epochs
    assert "name: s3-run" in (run / "spec.yaml").read_text()
    assert (run / "tune").exists()  # Tune's own state went to the bucket as well
    assert f"{run}: 2 trials (2 completed)" in out

    # `archsearch results` reads the run straight from the bucket.
    assert main(["results", s3_uri, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 3 and "trial_id" in rows[0]


def test_export_into_s3_is_refused_before_the_search(s3_uri, tmp_path, capsys):
    from cluster.cli import main

    assert main(["run", str(_spec_file(tmp_path)), "--output", s3_uri]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("cannot export the model yet; add --no-export")
    assert not (location(s3_uri) / "spec.yaml").exists()
