"""The HF dataset card's YAML header is what `datasets` reads without complaint: `dataset_info.splits` has
name, num_bytes and num_examples per split (the Hub's documented schema), so datasets keeps it instead of
warning "The `splits` field in YAML is malformed" and dropping it."""

from __future__ import annotations

import logging

import pytest
import yaml

from evaluation.export.writers import hf_folder_write
from tests.evaluation.export.test_roundtrip import media_in_tmp, snapshot  # noqa: F401 (fixtures)


def card_header(folder) -> dict:
    return yaml.safe_load((folder / "README.md").read_text().split("---")[1])


def test_the_splits_yaml_follows_the_dataset_info_schema(snapshot, tmp_path):  # noqa: F811
    hf_folder_write(snapshot, tmp_path / "ds")
    info = card_header(tmp_path / "ds")["dataset_info"]
    assert [split["name"] for split in info["splits"]] == ["train", "test"]
    for split in info["splits"]:
        assert set(split) == {"name", "num_bytes", "num_examples"}
        assert split["num_examples"] == 3 and split["num_bytes"] > 0
    assert info["dataset_size"] == sum(split["num_bytes"] for split in info["splits"])


def test_datasets_parses_the_card_splits_and_loads_without_a_warning(snapshot, tmp_path, caplog):  # noqa: F811
    datasets = pytest.importorskip("datasets")
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    hf_folder_write(snapshot, tmp_path / "ds")
    caplog.set_level(logging.WARNING)
    infos = DatasetInfosDict.from_dataset_card_data(DatasetCard.load(tmp_path / "ds" / "README.md").data)
    splits = infos["default"].splits
    assert {name: split.num_examples for name, split in splits.items()} == {"train": 3, "test": 3}
    loaded = datasets.load_dataset(str(tmp_path / "ds"), cache_dir=str(tmp_path / "hf-cache"))
    assert {name: len(loaded[name]) for name in loaded} == {"train": 3, "test": 3}
    assert not [record for record in caplog.records if "malformed" in record.getMessage()]
    recorded = loaded["train"].info.splits["train"].num_bytes
    assert splits["train"].num_bytes == recorded  # the Arrow size datasets itself records
