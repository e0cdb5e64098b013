"""reliqa batch --shard I/N and --merge: a deterministic partition, one journal per shard, a
merge that refuses what does not belong together."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from reliqa import batch
from reliqa.cli import app
from reliqa.exceptions import DataError, InvalidInputError

runner = CliRunner()


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    photo = data.astronaut()
    for index in range(12):
        crop = np.ascontiguousarray(photo[index * 8 : index * 8 + 32, :32])
        Image.fromarray(crop).save(images / f"a{index:02d}.png")
    (images / "broken.png").write_bytes(b"not an image")
    return images


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["batch", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_partition_is_disjoint_complete_and_independent_of_order(folder: Path) -> None:
    items = batch.items_from_inputs([folder])
    shuffled = list(items)
    random.Random(0).shuffle(shuffled)
    shards = [batch.select_shard(items, index, 3) for index in (1, 2, 3)]
    assert sorted(i.key for shard in shards for i in shard) == sorted(i.key for i in items)
    for index, shard in enumerate(shards, start=1):
        # Neither the order of the inputs nor the other inputs change an item's shard.
        assert {i.key for i in batch.select_shard(shuffled, index, 3)} == {i.key for i in shard}
        rest = items[3:]
        assert batch.select_shard(rest, index, 3) == [i for i in shard if i in rest]
    # The hash is part of the contract: sha1 of "reference\0image", first 8 bytes, mod N, + 1.
    assert [batch.shard_of(batch.BatchItem(f"img{n}.png"), 4) for n in range(8)] == [2, 2, 4, 2, 1, 4, 2, 2]
    assert batch.shard_of(batch.BatchItem("photos/a.jpg"), 4) == 3
    assert batch.shard_of(batch.BatchItem("t.png", reference="r.png"), 7) == 3
    assert batch.parse_shard(" 2/4 ") == (2, 4)
    for bad in ("0/4", "5/4", "2", "a/b", "-1/3"):
        with pytest.raises(InvalidInputError, match="--shard"):
            batch.parse_shard(bad)


def test_shards_then_merge_equal_one_run(folder: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.csv"
    assert _cli(str(folder), "-m", "laplacian_var", "-o", str(whole), "--workers", "0")[0] == 1
    out = tmp_path / "r.csv"
    for index in (1, 2, 3):
        code, output = _cli(str(folder), "-m", "laplacian_var", "-o", str(out), "--shard", f"{index}/3",
                            "--workers", "0", "--json")
        assert code in (0, 1), output
        assert json.loads(output)["out"] == str(tmp_path / f"r.shard-{index}-of-3.csv")
    # A shard's journal resumes like any run.
    code, output = _cli(str(folder), "-m", "laplacian_var", "-o", str(out), "--shard", "2/3", "--json")
    assert json.loads(output)["scored_now"] == 0
    merged = tmp_path / "merged.csv"
    code, output = _cli("--merge", str(tmp_path / "r.shard-*.csv"), "-o", str(merged), "--json")
    assert code == 1 and json.loads(output)["rows"] == 13  # broken.png is an error row
    expected = sorted(_read(whole), key=lambda row: row["image"])
    assert _read(merged) == expected
    pytest.importorskip("pyarrow")
    parquet = tmp_path / "merged.parquet"
    assert _cli("--merge", *(str(p) for p in sorted(tmp_path.glob("r.shard-*.csv"))), "-o", str(parquet))[0] == 1
    assert batch.read_results(parquet) == expected


@pytest.mark.parametrize("mode", ["pairs", "ref-dir"])
def test_shards_of_pair_modes(folder: Path, tmp_path: Path, mode: str) -> None:
    references = tmp_path / "ref"
    references.mkdir()
    for path in sorted(folder.glob("a*.png"))[:6]:
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(references / path.name)
    if mode == "pairs":
        (tmp_path / "pairs.csv").write_text(
            "reference,test\n" + "".join(f"ref/a{i:02d}.png,images/a{i:02d}.png\n" for i in range(6))
        )
        source = ["--pairs", str(tmp_path / "pairs.csv")]
    else:
        source = [str(folder), "--ref-dir", str(references)]  # 7 unmatched: error rows
    whole = tmp_path / "whole.csv"
    _cli(*source, "-m", "psnr", "-o", str(whole), "--workers", "0")
    for index in (1, 2):
        _cli(*source, "-m", "psnr", "-o", str(tmp_path / "r.csv"), "--shard", f"{index}/2", "--workers", "0")
    merged = tmp_path / "merged.csv"
    _cli("--merge", str(tmp_path / "r.shard-1-of-2.csv"), str(tmp_path / "r.shard-2-of-2.csv"), "-o", str(merged))
    expected = sorted(_read(whole), key=lambda row: (row["image"], row["reference"]))
    assert _read(merged) == expected and len(expected) == (6 if mode == "pairs" else 13)


def test_merge_refuses_what_does_not_belong_together(folder: Path, tmp_path: Path) -> None:
    def shard(index: int, count: int, metrics: str, name: str = "r.csv") -> Path:
        out = tmp_path / name
        _cli(str(folder), "-m", metrics, "-o", str(out), "--shard", f"{index}/{count}", "--workers", "0")
        return batch.shard_output(out, index, count)

    one, two = shard(1, 2, "laplacian_var"), shard(2, 2, "laplacian_var")
    other_metrics = shard(2, 2, "niqe,laplacian_var", "other.csv")
    out = tmp_path / "merged.csv"
    cases = [
        ([one], "missing shard\\(s\\) 2/2"),
        ([one, other_metrics], "different metric sets"),
        ([one, two, shard(1, 3, "laplacian_var")], "different shardings"),
    ]
    for sources, message in cases:
        with pytest.raises(DataError, match=message):
            batch.merge_results(sources, out)
    # A duplicated row (the same shard twice under two names) and a row in the wrong shard.
    copy = tmp_path / "copy.csv"
    copy.write_bytes(one.read_bytes())
    with pytest.raises(DataError, match="duplicate"):
        batch.merge_results([one, two, copy], out)
    swapped = [tmp_path / "s.shard-1-of-2.csv", tmp_path / "s.shard-2-of-2.csv"]
    swapped[0].write_bytes(two.read_bytes())
    swapped[1].write_bytes(one.read_bytes())
    with pytest.raises(DataError, match="belongs to another shard"):
        batch.merge_results(swapped, out)
    assert not out.exists()
    # Through the CLI: an existing output is never overwritten (bad usage, exit 2); files that
    # do not belong together are a failed input (exit 1), and nothing is written.
    out.write_text("keep me")
    code, output = _cli("--merge", str(one), str(two), "-o", str(out))
    assert code == 2 and "exists" in output and out.read_text() == "keep me"
    code, output = _cli("--merge", str(one), str(other_metrics), "-o", str(tmp_path / "m2.csv"))
    assert code == 1 and "different metric sets" in output and not (tmp_path / "m2.csv").exists()


def test_inputs_may_be_lists_of_paths(folder: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("image\n" + "".join(f"images/a{i:02d}.png\n" for i in range(4)))
    items = batch.items_from_sources([listing, folder / "a05.png"])
    assert [Path(i.image).name for i in items] == ["a00.png", "a01.png", "a02.png", "a03.png", "a05.png"]
    assert Path(items[0].image) == folder / "a00.png"
    (tmp_path / "bad.csv").write_text("name\nx.png\n")
    with pytest.raises(DataError, match="column 'image'"):
        batch.items_from_path_list(tmp_path / "bad.csv")


def test_parquet_shards_merge_in_arrow(folder: Path, tmp_path: Path) -> None:
    """Parquet in and out takes the Arrow path: same rows, same refusals as the row path."""
    pytest.importorskip("pyarrow")
    whole = tmp_path / "whole.csv"
    _cli(str(folder), "-m", "laplacian_var", "-o", str(whole), "--workers", "0")
    for index in (1, 2):
        _cli(str(folder), "-m", "laplacian_var", "-o", str(tmp_path / "p.parquet"), "--shard", f"{index}/2", "--workers", "0")
    shards = [tmp_path / "p.shard-1-of-2.parquet", tmp_path / "p.shard-2-of-2.parquet"]
    code, output = _cli("--merge", *map(str, shards), "-o", str(tmp_path / "m.parquet"), "--json")
    assert code == 1 and json.loads(output)["failed"] == 1
    assert batch.read_results(tmp_path / "m.parquet") == sorted(_read(whole), key=lambda row: row["image"])
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(shards[0].read_bytes())
    with pytest.raises(DataError, match="duplicate"):
        batch.merge_results([*shards, copy], tmp_path / "m2.parquet")
    swapped = [tmp_path / "s.shard-1-of-2.parquet", tmp_path / "s.shard-2-of-2.parquet"]
    swapped[0].write_bytes(shards[1].read_bytes())
    swapped[1].write_bytes(shards[0].read_bytes())
    with pytest.raises(DataError, match="belongs to another shard"):
        batch.merge_results(swapped, tmp_path / "m3.parquet")
    assert not (tmp_path / "m2.parquet").exists() and not (tmp_path / "m3.parquet").exists()


def test_empty_shards_write_a_header_and_merge(folder: Path, tmp_path: Path) -> None:
    """More shards than inputs (a SLURM array sized for a bigger run): empty shards succeed."""
    for index in (1, 2, 3):
        code, output = _cli(str(folder / "a00.png"), "-m", "laplacian_var", "-o", str(tmp_path / "r.csv"),
                            "--shard", f"{index}/3", "--workers", "0", "--json")
        assert code == 0, output
    sizes = sorted(len(_read(tmp_path / f"r.shard-{i}-of-3.csv")) for i in (1, 2, 3))
    assert sizes == [0, 0, 1]
    code, output = _cli("--merge", str(tmp_path / "r.shard-*-of-3.csv"), "-o", str(tmp_path / "m.csv"), "--json")
    assert code == 0 and json.loads(output)["rows"] == 1


def test_an_empty_shard_of_a_pair_run_writes_a_header_and_merges(folder: Path, tmp_path: Path) -> None:
    """With one pair and two shards one shard is always empty; it is still a pair run (exit 0,
    a header-only output), not a full-reference metric 'without pairs' (a usage error)."""
    (tmp_path / "pairs.csv").write_text("reference,test\nimages/a00.png,images/a01.png\n")
    source = ["--pairs", str(tmp_path / "pairs.csv"), "-m", "psnr", "--workers", "0"]
    for index in (1, 2):
        code, output = _cli(*source, "-o", str(tmp_path / "r.csv"), "--shard", f"{index}/2")
        assert code == 0, output
    parts = [tmp_path / f"r.shard-{index}-of-2.csv" for index in (1, 2)]
    assert sorted(len(_read(part)) for part in parts) == [0, 1]
    code, output = _cli("--merge", *map(str, parts), "-o", str(tmp_path / "merged.csv"))
    assert code == 0, output
    assert [row["reference"].endswith("a00.png") for row in _read(tmp_path / "merged.csv")] == [True]
