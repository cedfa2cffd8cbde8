"""``--strategy``: the strategy each choice resolves to, MirroredStrategy over two logical CPUs
matching one device, two multi-worker processes agreeing, and a kill mid-epoch resuming."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.errors import ConfigError
from kneeoa.cli import main as kneeoa
from kneeoa_train.strategy import resolve_name, tf_config

from synthetic import write_patients

HELPER = Path(__file__).with_name("distributed_run.py")
REPO = Path(__file__).resolve().parent.parent
CLUSTER = {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 1}}


def test_auto_picks_multi_worker_for_a_cluster_mirrored_for_gpus_else_one():
    assert resolve_name("auto", 0, {}) == "one"
    assert resolve_name("auto", 1, {}) == "one"
    assert resolve_name("auto", 4, {}) == "mirrored"
    assert resolve_name("auto", 0, CLUSTER) == "multi-worker"
    assert resolve_name("mirrored", 0, CLUSTER) == "mirrored"
    with pytest.raises(ConfigError, match="needs TF_CONFIG"):
        resolve_name("multi-worker", 2, {})


def test_a_malformed_tf_config_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG: not valid JSON"):
        tf_config()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {}}))
    with pytest.raises(ConfigError, match=r"TF_CONFIG: expected \{\"cluster\""):
        tf_config()


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    data = write_patients(root / "data", patients=24)
    result = CliRunner().invoke(kneeoa, ["prepare", str(data), "--out", str(root / "s"), "--shard-size", "8"])
    assert result.exit_code == 0, result.output
    return root / "s"


def _helper(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", **(env or {})}
    return subprocess.run(
        [sys.executable, str(HELPER), *args], capture_output=True, text=True, timeout=timeout, env=environ
    )


@pytest.mark.slow
def test_mirrored_over_two_cpus_learns_the_same_weights_as_one_device(shards):
    proc = _helper("same-weights", str(shards))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["one"]["replicas"], result["mirrored"]["replicas"]) == (1, 2)
    moved = max(
        np.abs(np.asarray(a) - np.asarray(b)).max()
        for a, b in zip(result["one"]["weights"], result["initial"], strict=True)
    )
    assert moved > 1e-3, "training did not change the weights: the comparison would prove nothing"
    for one, mirrored in zip(result["one"]["weights"], result["mirrored"]["weights"], strict=True):
        np.testing.assert_allclose(np.asarray(mirrored), np.asarray(one), atol=1e-5)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_multi_worker_processes_train_to_the_same_weights(shards, tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs, outs = [], []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        outs.append(tmp_path / f"worker{index}.json")
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "TF_CONFIG": json.dumps(config)}
        procs.append(
            subprocess.Popen(
                [sys.executable, str(HELPER), "worker", str(shards), str(outs[-1])],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err[-3000:]
    results = [json.loads(p.read_text()) for p in outs]
    assert [r["info"]["task"] for r in results] == ["worker:0", "worker:1"]
    assert [r["info"]["chief"] for r in results] == [True, False]
    assert all(r["info"]["replicas"] == 2 and r["info"]["workers"] == 2 for r in results)
    moved = max(
        np.abs(np.asarray(a) - np.asarray(b)).max()
        for a, b in zip(results[0]["weights"], results[0]["initial"], strict=True)
    )
    assert moved > 1e-3, "training did not change the weights: agreement would prove nothing"
    for a, b in zip(results[0]["weights"], results[1]["weights"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    # FILE sharding: 3 steps of 4 records each, from shard files no other worker reads.
    shard_of = _shard_of_each_record(shards)
    seen = [r["seen"] for r in results]
    assert [len(s) for s in seen] == [12, 12] and not set(seen[0]) & set(seen[1])
    assert not {shard_of[f] for f in seen[0]} & {shard_of[f] for f in seen[1]}


def _shard_of_each_record(shards: Path) -> dict[str, str]:
    """Source file of each training record → the shard file holding it."""
    import tensorflow as tf

    from kneeoa_train.stream import parse_record

    manifest = json.loads((shards / "shards.json").read_text())
    return {
        parse_record(r, with_ids=True)[3].numpy().decode(): s["file"]
        for s in manifest["splits"]["train"]["shards"]
        for r in tf.data.TFRecordDataset(str(shards / s["file"]))
    }


def _tiny_run(shards: Path, out: Path, **overrides) -> dict:
    """A two-epoch training configuration of a tiny model on ``shards``."""
    cfg = {"train_dir": str(shards), "val_dir": str(shards), "out_dir": str(out), "input_size": 75,
           "hidden_units": 8, "epochs": 2, "batch_size": 8, "precision": "float32"}  # fmt: skip
    return cfg | overrides


@pytest.mark.slow
def test_a_mirrored_run_killed_mid_epoch_resumes_and_records_its_strategy(shards, tmp_path):
    out = tmp_path / "run"
    cfg = _tiny_run(shards, out, steps_per_epoch=6, strategy="mirrored", backup_steps=1)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}
    log = tmp_path / "first.log"
    with open(log, "w") as sink:
        first = subprocess.Popen(
            [sys.executable, str(HELPER), "train", json.dumps(cfg), "2"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    meta = out / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 600
    state = {}
    while time.monotonic() < deadline and first.poll() is None:  # kill inside epoch 2, after a backup there
        try:
            state = json.loads(meta.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("epoch") == 1 and state.get("batch", 0) >= 1:
            first.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, f"not killed mid-epoch (state {state}): {log.read_text()[-3000:]}"
    assert (out / "backup").is_dir() and not (out / "metrics.json").exists()
    state = json.loads(meta.read_text())  # what the backup holds after the kill
    second = _helper("train", json.dumps(cfg), "2")
    assert second.returncode == 0, second.stderr[-3000:]
    done = state["epoch"] * 6 + state["batch"] + 1  # the stream picks up after the batches already trained on
    assert f"the stream starts after batch {done}" in second.stderr, second.stderr[-3000:]
    assert "Epoch 2/2" in second.stdout + second.stderr and "Epoch 1/2" not in second.stdout + second.stderr
    assert (out / "model.keras").is_file() and (out / "metrics.json").is_file() and not (out / "backup").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"] | {} == {
        "name": "mirrored",
        "asked": "mirrored",
        "replicas": 2,
        "workers": 1,
        "task": None,
        "chief": True,
    }
    assert config["data"]["kind"] == "shards"
    epochs = [json.loads(line)["epoch"] for line in (out / "epochs.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


@pytest.mark.slow
def test_kneeoa_training_on_two_workers_writes_one_run_from_the_chief(shards, tmp_path):
    """The trainer itself (InceptionV3, validation, checkpoints) under multi-worker: both workers
    step in sync, only worker 0 writes the run directory, and neither leaves resume state behind."""
    out = tmp_path / "run"
    cfg = _tiny_run(shards, out, steps_per_epoch=2, strategy="multi-worker")
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs, logs = [], []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "TF_CONFIG": json.dumps(config)}
        logs.append(tmp_path / f"worker{index}.log")
        with open(logs[-1], "w") as sink:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(HELPER), "train", json.dumps(cfg)],
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )
    for proc, log in zip(procs, logs, strict=True):
        try:
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, log.read_text()[-3000:]
    losses = [[line.split("loss:")[1] for line in log.read_text().splitlines() if "loss:" in line] for log in logs]
    assert len(losses[0]) == 2 and losses[0] == losses[1], losses
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"]["name"] == "multi-worker" and config["strategy"]["replicas"] == 2
    assert config["strategy"]["task"] == "worker:0" and config["strategy"]["chief"]
    n_files = len(json.loads((shards / "shards.json").read_text())["splits"]["train"]["shards"])
    assert config["input_sharding"] == {"policy": "FILE", "workers": 2, "files": n_files}
    assert "input sharding: FILE over 2 workers" in logs[0].read_text()
    assert (out / "model.keras").is_file() and (out / "metrics.json").is_file()
    assert len((out / "epochs.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("backup")) == []


def _tiny_shards(root: Path, files: int = 4, records: int = 3) -> list[str]:
    import tensorflow as tf

    paths = []
    for f in range(files):
        paths.append(str(root / f"train-{f:05d}.tfrecord"))
        with tf.io.TFRecordWriter(paths[-1]) as writer:
            for r in range(records):
                writer.write(f"{f}-{r}".encode())
    return paths


def test_two_workers_read_files_of_their_own_and_together_each_record_once_a_pass(tmp_path):
    """FILE auto-sharding, as MultiWorkerMirroredStrategy applies it to each worker's copy of the
    pipeline (tf.data's own _AutoShardDataset): no file read by both workers, every record once."""
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    from kneeoa_train.config import TrainConfig
    from kneeoa_train.stream import _records, shard_policy

    files = _tiny_shards(tmp_path)
    cfg = TrainConfig("a", "b", "c", shuffle_buffer=1)  # one pass of 6 records per worker shows through unshuffled
    stream = _records(files, cfg, training=True, workers=2)
    assert stream.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.FILE
    seen = [[r.decode() for r in _AutoShardDataset(stream, 2, w).take(6).as_numpy_iterator()] for w in range(2)]
    shards = [{r.split("-")[0] for r in mine} for mine in seen]
    assert len(shards[0]) == len(shards[1]) == 2 and not shards[0] & shards[1]
    assert sorted(seen[0] + seen[1]) == sorted(f"{f}-{r}" for f in range(4) for r in range(3))
    assert shard_policy(1, 2) == "DATA" and shard_policy(2, 2) == "FILE"
    fallback = _records(files[:1], cfg, training=True, workers=2)
    assert fallback.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA


def test_a_resumed_stream_starts_where_the_interrupted_one_stopped(tmp_path):
    from kneeoa_train.config import TrainConfig
    from kneeoa_train.stream import _records

    files = _tiny_shards(tmp_path)
    cfg = TrainConfig("a", "b", "c", shuffle_buffer=5)
    whole = [r.decode() for r in _records(files, cfg, training=True).take(30).as_numpy_iterator()]
    assert len(set(whole[:10])) == 10 and whole[:10] != sorted(whole[:10])  # shuffled, seeded
    resumed = [r.decode() for r in _records(files, cfg, training=True, skip=17).take(13).as_numpy_iterator()]
    assert resumed == whole[17:]


def test_the_resume_position_follows_keras_backup_metadata(tmp_path):
    from kneeoa_train.resume import batches_done

    assert batches_done(tmp_path, 6, mid_epoch_saves=True) == 0
    (tmp_path / "training_metadata.json").write_text('{"epoch": 1, "batch": 2}')
    assert batches_done(tmp_path, 6, mid_epoch_saves=True) == 9  # epoch 1 done (6), then batches 0..2 of epoch 2
    (tmp_path / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    assert batches_done(tmp_path, 6, mid_epoch_saves=False) == 12  # saved at the end of epoch 2
