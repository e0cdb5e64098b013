"""Dataset readers on tiny generated fixtures in each standard layout (and BIQ2021 for real)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from reliqa.evaluation.dataset_layouts import detect_layout, load_dataset
from reliqa.evaluation.datasets import IQADataset, IQAItem, read_csv_dataset
from reliqa.exceptions import DataError, InvalidInputError, UnknownNameError


def _png(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)
    return path


def _cell(names: list[str]) -> np.ndarray:
    cells = np.empty((1, len(names)), dtype=object)
    for i, name in enumerate(names):
        cells[0, i] = name
    return cells


def _exists(dataset: IQADataset) -> bool:
    return all(item.image.is_file() and (item.reference is None or item.reference.is_file()) for item in dataset)


def test_generic_csv_with_relative_paths_and_optional_columns(tmp_path: Path) -> None:
    _png(tmp_path / "imgs" / "a.png")
    _png(tmp_path / "imgs" / "b.png")
    _png(tmp_path / "refs" / "r.png")
    table = tmp_path / "scores.csv"
    table.write_text("image,reference,mos,std\nimgs/a.png,refs/r.png,3.5,0.5\nimgs/b.png,refs/r.png,2,\n")
    dataset = load_dataset(table)
    assert dataset.name == "csv" and len(dataset) == 2 and _exists(dataset)
    assert dataset[0] == IQAItem(tmp_path / "imgs/a.png", 3.5, tmp_path / "refs/r.png", 0.5)
    assert dataset.std() is None and dataset.full_reference
    nr = tmp_path / "nr.csv"
    nr.write_text("Image,MOS\nimgs/a.png,1\n")
    assert load_dataset(nr)[0].reference is None


def test_csv_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("image,mos\na.png,1\nb.png,nan\n")
    with pytest.raises(DataError, match=r"bad.csv, line 3: column 'mos' is nan"):
        read_csv_dataset(bad)
    bad.write_text("image,mos\na.png,good\n")
    with pytest.raises(DataError, match=r"line 2: column 'mos' holds 'good'"):
        read_csv_dataset(bad)
    bad.write_text("picture,score\na.png,1\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['image', 'mos'\]"):
        read_csv_dataset(bad)
    bad.write_text("image,mos\n")
    with pytest.raises(DataError, match="no rated images"):
        read_csv_dataset(bad)
    with pytest.raises(DataError, match="no such dataset"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(UnknownNameError, match="unknown dataset layout 'imagenet'"):
        load_dataset(bad, layout="imagenet")


def test_dmos_direction_and_quality_mirror() -> None:
    items = [IQAItem(Path(f"{i}.png"), d, std=0.1) for i, d in enumerate([10.0, 40.0, 25.0])]
    dataset = IQADataset("x", Path("."), items, higher_is_better=False)
    np.testing.assert_allclose(dataset.quality(), [40.0, 10.0, 25.0])
    np.testing.assert_allclose(dataset.std(), [0.1] * 3)
    assert len(dataset.head(2)) == 2
    with pytest.raises(InvalidInputError, match="--limit"):
        dataset.head(0)


def test_live(tmp_path: Path) -> None:
    folders = {"jp2k": 2, "jpeg": 1, "wn": 1, "gblur": 1, "fastfading": 2}
    for folder, count in folders.items():
        for k in range(1, count + 1):
            _png(tmp_path / folder / f"img{k}.bmp")
        (tmp_path / folder / "info.txt").write_text("")
    _png(tmp_path / "refimgs" / "bikes.bmp")
    _png(tmp_path / "refimgs" / "house.bmp")
    savemat(tmp_path / "dmos.mat", {"dmos": np.array([[30.0, 0.0, 45, 50, 55, 60, 65]]),
                                    "orgs": np.array([[0, 1, 0, 0, 0, 0, 0]])})
    savemat(tmp_path / "refnames_all.mat", {"refnames_all": _cell(["bikes.bmp", "house.bmp"] + ["bikes.bmp"] * 5)})
    assert detect_layout(tmp_path) == "live"
    dataset = load_dataset(tmp_path)
    assert len(dataset) == 6 and not dataset.higher_is_better and _exists(dataset)
    assert dataset[0].image == tmp_path / "jp2k" / "img1.bmp" and dataset[0].mos == 30.0
    assert dataset[1].image == tmp_path / "jpeg" / "img1.bmp"  # jp2k/img2 is a reference (orgs = 1)
    (tmp_path / "wn" / "img1.bmp").unlink()
    with pytest.raises(DataError, match="LIVE layout mismatch: 6 images"):
        load_dataset(tmp_path)


def test_csiq_csv_export(tmp_path: Path) -> None:
    _png(tmp_path / "src_imgs" / "1600.png")
    _png(tmp_path / "dst_imgs" / "awgn" / "1600.AWGN.1.png")
    _png(tmp_path / "dst_imgs" / "jpeg2000" / "1600.jpeg2000.3.png")
    (tmp_path / "csiq_dmos.csv").write_text(
        "image,dst_idx,dst_type,dst_lev,dmos_std,dmos\n1600,1,noise,1,0.061,0.062\n"
        "1600,3,jpeg 2000,3,0.1,0.35\n"
    )
    assert detect_layout(tmp_path) == "csiq"
    dataset = load_dataset(tmp_path)
    assert [item.mos for item in dataset] == [0.062, 0.35] and not dataset.higher_is_better
    assert dataset[1].image.name == "1600.jpeg2000.3.png" and dataset[1].std == 0.1 and _exists(dataset)


def test_csiq_xlsx(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    _png(tmp_path / "src_imgs" / "1600.png")
    _png(tmp_path / "dst_imgs" / "blur" / "1600.BLUR.2.png")
    book = openpyxl.Workbook()
    book.active.append(["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"])
    book.active.append([1600, 5, "blur", 2, 0.05, 0.2])
    book.save(tmp_path / "csiq.DMOS.xlsx")
    assert load_dataset(tmp_path)[0].image.name == "1600.BLUR.2.png"


def test_tid2013(tmp_path: Path) -> None:
    _png(tmp_path / "reference_images" / "I01.BMP")
    _png(tmp_path / "reference_images" / "I02.BMP")
    _png(tmp_path / "distorted_images" / "i01_01_1.bmp")
    _png(tmp_path / "distorted_images" / "I02_24_5.BMP")
    (tmp_path / "mos_with_names.txt").write_text("5.51429 i01_01_1.bmp\n1.2 I02_24_5.BMP\n")
    (tmp_path / "mos_std.txt").write_text("0.13013\n0.2\n")
    dataset = load_dataset(tmp_path)
    assert dataset.name == "tid2013" and _exists(dataset)
    assert dataset[1].reference.name == "I02.BMP" and dataset[0].std == pytest.approx(0.13013)
    (tmp_path / "mos_std.txt").write_text("0.1\n")
    with pytest.raises(DataError, match="1 values but mos_with_names.txt has 2 lines"):
        load_dataset(tmp_path)


def test_kadid10k(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "I01.png")
    _png(tmp_path / "images" / "I01_01_01.png")
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.57,0.496\n")
    dataset = load_dataset(tmp_path)
    assert dataset.name == "kadid10k" and dataset.higher_is_better and _exists(dataset)
    assert dataset[0].std == pytest.approx(math.sqrt(0.496))


def test_koniq10k(tmp_path: Path) -> None:
    _png(tmp_path / "1024x768" / "826373.jpg")
    (tmp_path / "koniq10k_scores_and_distributions.csv").write_text(
        '"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore"\n'
        '"826373.jpg",0,3,19,77,7,106,3.83,0.63,77.38\n'
    )
    dataset = load_dataset(tmp_path)
    assert dataset.name == "koniq10k" and dataset[0].mos == 3.83 and dataset[0].std == 0.63 and _exists(dataset)


def test_spaq_csv_export_and_xlsx(tmp_path: Path) -> None:
    _png(tmp_path / "TestImage" / "00001.jpg")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "MOS and Image attribute scores.csv").write_text(
        "Image name,MOS,Brightness,Colorfulness,Contrast,Noisiness,Sharpness\n00001.jpg,42.5,1,2,3,4,5\n"
    )
    assert detect_layout(tmp_path) == "spaq"
    dataset = load_dataset(tmp_path)
    assert dataset[0].mos == 42.5 and _exists(dataset)
    (tmp_path / "Annotations" / "MOS and Image attribute scores.csv").unlink()
    (tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx").write_bytes(b"PK")
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="needs openpyxl"):
            load_dataset(tmp_path)
    else:
        with pytest.raises(DataError, match="cannot read the spreadsheet"):
            load_dataset(tmp_path)


def test_pipal(tmp_path: Path) -> None:
    _png(tmp_path / "Train_Ref" / "A0001.bmp")
    _png(tmp_path / "Train_Dis" / "A0001_00_00.bmp")
    _png(tmp_path / "Train_Dis" / "A0001_10_02.bmp")
    (tmp_path / "Train_Label").mkdir()
    (tmp_path / "Train_Label" / "A0001.txt").write_text("A0001_00_00.bmp,1462.3\nA0001_10_02.bmp,1123.5\n")
    dataset = load_dataset(tmp_path)
    assert dataset.name == "pipal" and len(dataset) == 2 and _exists(dataset)
    assert dataset[1].reference.name == "A0001.bmp" and dataset[1].mos == 1123.5


def test_live_challenge(tmp_path: Path) -> None:
    _png(tmp_path / "Images" / "trainingImages" / "t1.bmp")
    _png(tmp_path / "Images" / "10.JPG")
    _png(tmp_path / "Images" / "100.bmp")
    (tmp_path / "Data").mkdir()
    names = np.empty((3, 1), dtype=object)
    names[:, 0] = ["t1.bmp", "10.JPG", "100.bmp"]
    savemat(tmp_path / "Data" / "AllImages_release.mat", {"AllImages_release": names})
    savemat(tmp_path / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[60.0, 43.4, 55.5]])})
    savemat(tmp_path / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.array([[9.0, 18.5, 17.0]])})
    dataset = load_dataset(tmp_path)
    assert dataset.name == "live_challenge" and len(dataset) == 2 and _exists(dataset)
    assert (dataset[0].mos, dataset[0].std) == (43.4, 18.5)


def test_biq2021_fixture_and_csv_path(tmp_path: Path) -> None:
    _png(tmp_path / "Images" / "ss03 (7805).jpg")
    (tmp_path / "Test (Images and MOS).csv").write_text("Image Name,MOS\nss03 (7805).jpg,0.7321\n")
    dataset = load_dataset(tmp_path)
    assert dataset.name == "biq2021" and dataset[0].mos == 0.7321 and _exists(dataset)
    assert load_dataset(tmp_path / "Test (Images and MOS).csv")[0] == dataset[0]


@pytest.mark.shared
def test_biq2021_real_folder(shared_data: Path) -> None:
    dataset = load_dataset(shared_data / "biq2021_test")
    assert dataset.name == "biq2021" and len(dataset) == 2000 and dataset.higher_is_better
    assert dataset[0].image.name == "ss03 (7805).jpg" and dataset[0].mos == pytest.approx(0.7321)
    mos = dataset.mos()
    assert 0.0 <= mos.min() and mos.max() <= 1.0 and dataset.std() is None
    assert all(item.image.is_file() for item in dataset)
