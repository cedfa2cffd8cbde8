"""``kneeoa prepare`` and patient-level splits: shards hold exactly the device's preprocessed pixels,
nothing is lost, and no patient crosses splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge_infer.decode import load_grayscale
from edge_infer.errors import ConfigError, DatasetError
from edge_infer.preprocess import PreprocessSpec, prepare_gray
from kneeoa.cli import main as kneeoa
from kneeoa_train.splits import GroupIds, check_no_leak, parse_fractions, split_by_group

from synthetic import synthetic_knee, write_patients


def read_records(files: list[str]) -> list[dict]:
    import tensorflow as tf

    from kneeoa_train.stream import parse_record

    out = []
    for rec in tf.data.TFRecordDataset(files):
        img, label, group, name = parse_record(rec, with_ids=True)
        out.append(
            {"image": img.numpy(), "label": int(label), "group": group.numpy().decode(), "file": name.numpy().decode()}
        )
    return out


def test_the_default_pattern_reads_kneekl224_names_and_a_named_group_wins(tmp_path):
    assert GroupIds().group_of(tmp_path / "0" / "9003175L.png", tmp_path) == "9003175"
    assert GroupIds(r"site(?P<id>\d+)_(\d+)").group_of(tmp_path / "site12_77.png", tmp_path) == "12"
    assert GroupIds().group_of(tmp_path / "knee.png", tmp_path) is None
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        GroupIds("(")


def test_ids_from_a_csv_by_relative_path_or_name(tmp_path):
    table = tmp_path / "ids.csv"
    table.write_text("file,group\n0/a.png,P1\nb.png,P2\n")
    ids = GroupIds(csv_file=table)
    assert ids.group_of(tmp_path / "0" / "a.png", tmp_path) == "P1"
    assert ids.group_of(tmp_path / "3" / "b.png", tmp_path) == "P2"
    assert ids.group_of(tmp_path / "3" / "c.png", tmp_path) is None
    table.write_text("name,patient\nx,y\n")
    with pytest.raises(ConfigError, match="'file' and 'group' columns"):
        GroupIds(csv_file=table)


def test_no_patient_crosses_splits_and_the_split_is_stable():
    rng = np.random.default_rng(0)
    groups = [f"P{rng.integers(0, 400)}" for _ in range(3000)]  # 1 to ~20 images per patient
    plan = split_by_group(groups, (0.7, 0.2, 0.1), seed=3)
    where: dict[str, set] = {}
    for g, s in zip(groups, plan.assignment, strict=True):
        where.setdefault(g, set()).add(s)
    assert all(len(s) == 1 for s in where.values())
    counts = plan.counts()
    assert abs(counts["train"] / 3000 - 0.7) < 0.03 and abs(counts["test"] / 3000 - 0.1) < 0.03
    # A patient keeps its split when others are added or the files are listed in another order.
    again = split_by_group(groups[::-1], (0.7, 0.2, 0.1), seed=3).assignment[::-1]
    assert sum(a != b for a, b in zip(again, plan.assignment, strict=True)) < 0.1 * len(groups)


def test_a_leaking_split_is_refused():
    with pytest.raises(DatasetError, match=r"leaks: 1 patient/group id\(s\) .*P2 in train\+val"):
        check_no_leak(["P1", "P2", "P2"], ["train", "train", "val"])


@pytest.mark.parametrize("text", ["0.8,0.2", "0.5,0.5,0.5", "0,0.5,0.5", "a,b,c"])
def test_bad_fractions_are_refused(text):
    with pytest.raises(ConfigError, match="--split"):
        parse_fractions(text)


def test_prepare_splits_by_patient_keeps_every_image_and_the_device_pixels(tmp_path):
    data = write_patients(tmp_path / "my data", patients=20, visits=2)
    (data / "2" / "9000003L_9.png").write_bytes(b"not an image")  # a patient's unreadable visit
    (data / "1" / "scan.png").write_bytes(Image.new("L", (64, 64)).tobytes())  # no id in the name
    out = tmp_path / "shards"
    result = CliRunner().invoke(kneeoa, ["prepare", str(data), "--out", str(out), "--size", "75", "--shard-size", "7"])
    assert result.exit_code == 1, result.output
    refusals = [line for line in result.output.splitlines() if line.startswith("refused ")]
    assert len(refusals) == 2
    assert any("9000003L_9.png" in r and "not an image" in r for r in refusals)
    assert any("scan.png" in r and "no patient/group id" in r for r in refusals)
    manifest = json.loads((out / "shards.json").read_text())
    assert manifest["found"] == 82 and manifest["written"] == 80 and len(manifest["refused"]) == 2
    assert manifest["command"].startswith("kneeoa prepare") and "--shard-size 7" in manifest["command"]
    records, where = [], {}
    for name, split in manifest["splits"].items():
        assert all(s["images"] <= 7 for s in split["shards"]) and all(len(s["sha256"]) == 64 for s in split["shards"])
        mine = read_records([str(out / s["file"]) for s in split["shards"]])
        assert len(mine) == split["images"]
        assert np.bincount([r["label"] for r in mine], minlength=5).tolist() == split["counts"]
        for r in mine:
            where.setdefault(r["group"], set()).add(name)
        records += mine
    assert sorted(r["file"] for r in records) == sorted(
        p.relative_to(data).as_posix() for p in data.rglob("*.png") if p.name not in ("9000003L_9.png", "scan.png")
    )
    assert all(len(s) == 1 for s in where.values()), "a patient crossed splits"
    assert set(manifest["splits"]) == {"train", "val", "test"}
    spec = PreprocessSpec(size=75, intensity="percentile")
    for r in records[:5]:  # exactly what the device computes from the file
        assert np.array_equal(r["image"][..., 0], prepare_gray(load_grayscale(data / r["file"]), spec)[0])


def test_prepare_keeps_a_given_split_but_refuses_one_that_leaks(tmp_path):
    data = tmp_path / "given"
    write_patients(data / "train", patients=6)
    write_patients(data / "val", patients=5, first=9100000)
    ok = CliRunner().invoke(kneeoa, ["prepare", str(data), "--out", str(tmp_path / "s1")])
    assert ok.exit_code == 0, ok.output
    assert "train: 12 images, 6 patients" in ok.output and "val: 10 images, 5 patients" in ok.output
    Image.fromarray(synthetic_knee(1, 80)).save(data / "val" / "1" / "9000002R.png")  # patient 9000002 is in train
    leak = CliRunner().invoke(kneeoa, ["prepare", str(data), "--out", str(tmp_path / "s2")])
    assert leak.exit_code == 1
    assert "the split leaks: 1 patient/group id(s) appear in more than one subset (9000002 in train+val)" in leak.output
    assert not (tmp_path / "s2").exists()


def test_prepare_refuses_to_overwrite_and_verify_finds_a_changed_shard(tmp_path):
    data = write_patients(tmp_path / "d", patients=10)
    out = tmp_path / "s"
    assert CliRunner().invoke(kneeoa, ["prepare", str(data), "--out", str(out)]).exit_code == 0
    again = CliRunner().invoke(kneeoa, ["prepare", str(data), "--out", str(out)])
    assert again.exit_code == 1 and "already holds shards; choose another --out" in again.output
    assert CliRunner().invoke(kneeoa, ["prepare", str(data), "--out", str(out), "--verify"]).exit_code == 0
    shard = next((out / "train").glob("*.tfrecord"))
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    bad = CliRunner().invoke(kneeoa, ["prepare", str(data), "--out", str(out), "--verify"])
    assert bad.exit_code == 1 and f"{shard}: sha256 differs from shards.json" in bad.output


def test_a_bad_id_pattern_is_a_usage_error(tmp_path):
    data = write_patients(tmp_path / "d", patients=2)
    result = CliRunner().invoke(kneeoa, ["prepare", str(data), "--out", str(tmp_path / "s"), "--id-pattern", "("])
    assert result.exit_code == 2 and "not a valid regular expression" in result.output


def test_training_refuses_shards_of_another_contract_and_reads_their_counts(tmp_path):
    from kneeoa_train.config import TrainConfig, training_command
    from kneeoa_train.errors import TrainSetupError
    from kneeoa_train.sources import open_source

    data = write_patients(tmp_path / "d", patients=10)
    out = tmp_path / "s"
    assert CliRunner().invoke(kneeoa, ["prepare", str(data), "--out", str(out), "--size", "80"]).exit_code == 0
    with pytest.raises(TrainSetupError, match=r"shards hold 80 px, intensity percentile; this run asks for 75 px"):
        open_source(TrainConfig(str(out), str(out), "r"))
    with pytest.raises(TrainSetupError, match="not one of each"):
        open_source(TrainConfig(str(out), str(data), "r", input_size=80))
    source = open_source(TrainConfig(str(out), str(out), "r", input_size=80))
    manifest = json.loads((out / "shards.json").read_text())
    assert source.kind == "shards" and source.counts["train"] == manifest["splits"]["train"]["counts"]
    assert source.n_train == manifest["splits"]["train"]["images"]
    assert source.val_labels().tolist().count(0) == manifest["splits"]["val"]["counts"][0]
    cfg = TrainConfig(str(out), str(out), str(tmp_path / "run"), input_size=80, strategy="mirrored").to_dict()
    assert training_command(cfg) == f"kneeoa train {out} --out runs/run --strategy mirrored --input-size 80"


def test_the_model_card_says_how_training_was_distributed():
    from kneeoa_convert.model_card import _strategy_line

    info = {"name": "multi-worker", "asked": "auto", "replicas": 8, "workers": 2, "task": "worker:0", "chief": True}
    assert _strategy_line(info) == [
        "Distribution: `multi-worker` strategy, 8 replica(s) on 2 worker(s) (asked: `--strategy auto`).",
        "",
    ]
    assert _strategy_line(None) == []
