"""One verified loader for every shipped file (``reliqa.verified``), one device rule
(``reliqa.checks.resolve_device``): a shipped file is read only after the sha256 of its card
matches; a tampered copy is refused with a WeightsError that names the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from reliqa.checks import resolve_device
from reliqa.exceptions import DeviceError, WeightsError
from reliqa.metrics.niqe import SHIPPED_PARAMS, load_params, load_shipped_params
from reliqa.models.weights import WEIGHTS_DIR, load_shipped
from reliqa.training.prompts import EMBEDDINGS_FILE, load_prompt_bank, load_prompt_embeddings
from reliqa.verified import load_carded, load_verified, read_card

PACKAGE = WEIGHTS_DIR.parent
SHIPPED = sorted([*WEIGHTS_DIR.glob("*.safetensors"), *(PACKAGE / "data").glob("*.safetensors")])


def _tampered_copy(shipped: Path, folder: Path) -> Path:
    """A copy of a shipped file and its card, with the file's last byte flipped."""
    copy = folder / shipped.name
    shutil.copy(shipped.with_suffix(".json"), copy.with_suffix(".json"))
    data = bytearray(shipped.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    return copy


def test_every_shipped_file_has_a_card_whose_sha256_matches() -> None:
    assert {path.name for path in SHIPPED} >= {
        "relational.safetensors", "hirqa.safetensors", "niqe_pristine.safetensors",
        "prompt_embeddings.safetensors",
    }
    for shipped in SHIPPED:
        card = read_card(shipped.with_suffix(".json"))
        assert card["file"] == shipped.name
        load_carded(shipped)  # raises on a mismatch


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda path: path.name)
def test_a_tampered_copy_of_a_shipped_file_is_refused_naming_it(shipped: Path, tmp_path: Path) -> None:
    copy = _tampered_copy(shipped, tmp_path)
    with pytest.raises(WeightsError, match=rf"{copy.name}: sha256 .* does not match") as caught:
        load_carded(copy)
    assert str(copy) in str(caught.value)


def test_the_loaders_of_shipped_files_check_the_hash(tmp_path: Path) -> None:
    load_shipped_params()
    bank = load_prompt_bank()
    assert load_prompt_embeddings(bank).shape[0] == len(bank.prompts)
    # the same loaders on a tampered copy: networks, NIQE's pristine model, prompt embeddings
    _tampered_copy(WEIGHTS_DIR / "relational.safetensors", tmp_path)
    with pytest.raises(WeightsError, match="relational.safetensors: sha256"):
        load_shipped("relational", tmp_path)
    niqe_copy = _tampered_copy(SHIPPED_PARAMS, tmp_path)
    card = read_card(niqe_copy.with_suffix(".json"))
    with pytest.raises(WeightsError, match="niqe_pristine.safetensors: sha256"):
        load_params(niqe_copy, expected_sha256=card["sha256"])
    embeddings_copy = _tampered_copy(EMBEDDINGS_FILE, tmp_path)
    with pytest.raises(WeightsError, match="prompt_embeddings.safetensors: sha256"):
        load_prompt_embeddings(bank, embeddings_copy)


def test_a_card_without_sha256_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / EMBEDDINGS_FILE.name
    shutil.copy(EMBEDDINGS_FILE, copy)
    card = json.loads(EMBEDDINGS_FILE.with_suffix(".json").read_text())
    del card["sha256"]
    copy.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="prompt_embeddings.json: .*records no sha256"):
        load_prompt_embeddings(load_prompt_bank(), copy)
    copy.with_suffix(".json").unlink()
    with pytest.raises(WeightsError, match="prompt_embeddings.json: cannot read"):
        load_carded(copy)


def test_files_of_our_own_commands_go_through_the_same_reader(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from reliqa.training.checkpoint import read_checkpoint

    garbage = tmp_path / "checkpoint.safetensors"
    garbage.write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="checkpoint.safetensors: not a valid safetensors checkpoint"):
        read_checkpoint(garbage)
    with pytest.raises(WeightsError, match="missing.safetensors: checkpoint file does not exist"):
        read_checkpoint(tmp_path / "missing.safetensors")
    save_file({"x": torch.ones(2)}, str(tmp_path / "own.safetensors"), metadata={"k": "v"})
    tensors, metadata = load_verified(tmp_path / "own.safetensors", None)
    assert metadata == {"k": "v"} and torch.equal(tensors["x"], torch.ones(2))


def test_one_device_rule_with_auto() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(DeviceError, match="not a torch device"):
        resolve_device("gpu")
    with pytest.raises(DeviceError, match="expected cpu, cuda or cuda:N"):
        resolve_device("meta")
