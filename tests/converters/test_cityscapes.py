"""converters/cityscapes.py: reading the conformance fixtures, writing, round trips, and bad input."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdata import converters
from segdata.converters import cityscapes, coco
from segdata.converters._raster import read_label_png
from segdata.errors import FormatError, MaskError, UsageError
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord, annotation_values
from tests.conftest import run_segdata
from tests.converters.stored_checks import assert_equals_eager, read_alike_on_two_processes

DATUMARO = "openvinotoolkit+datumaro/tests/assets/cityscapes_dataset"
MMSEG = "open-mmlab+mmsegmentation/tests/data/pseudo_cityscapes_dataset"
FRAME = "gtFine/val/frankfurt/frankfurt_000000_000294_gtFine"


def counts(dataset: Dataset) -> Counter:
    """(category id, iscrowd) -> number of annotations."""
    return Counter((a.category_id, a.iscrowd) for a in dataset.annotations)


def codes(dataset: Dataset) -> Counter:
    return Counter(f.code for f in dataset.findings)


@pytest.fixture
def mmseg_copy(conformance_dir, tmp_path) -> Path:
    """A writable copy of mmsegmentation's downscaled Cityscapes frame."""
    return Path(shutil.copytree(conformance_dir / MMSEG, tmp_path / "cityscapes"))


# ------------------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("relative", [f"{DATUMARO}/dataset", f"{DATUMARO}/train_dataset", MMSEG,
                                      f"{MMSEG}/gtFine"])
def test_sniff_claims_cityscapes_trees(conformance_dir, relative):
    assert cityscapes.sniff(conformance_dir / relative)
    assert converters.sniff(conformance_dir / relative) == "cityscapes"


@pytest.mark.parametrize("relative", [f"{MMSEG}/leftImg8bit", f"{DATUMARO}", "cocodataset+cocoapi"])
def test_sniff_refuses_other_folders(conformance_dir, samples_dir, relative):
    assert not cityscapes.sniff(conformance_dir / relative)
    assert not cityscapes.sniff(samples_dir / "coco")
    assert not cityscapes.sniff(conformance_dir / MMSEG / f"{FRAME}_labelIds.png")


# ------------------------------------------------------------------------------ conformance reads


def test_datumaro_8bit_instance_ids_are_crowds_and_stuff(conformance_dir):
    dataset = cityscapes.read(conformance_dir / DATUMARO / "dataset")
    assert [(i.split, i.file_name, i.height, i.width, i.group) for i in dataset.images] == [
        ("train", "defaultcity/defaultcity_000002_000045_leftImg8bit.png", 1, 5, "defaultcity"),
        ("val", "defaultcity/defaultcity_000001_000019_leftImg8bit.png", 1, 5, "defaultcity"),
        ("test", "defaultcity/defaultcity_000001_000031_leftImg8bit.png", 1, 5, "defaultcity"),
        ("test", "defaultcity/defaultcity_000001_000032_leftImg8bit.png", 1, 5, "defaultcity"),
    ]
    assert all(i.path is not None and i.path.is_file() for i in dataset.images)
    # values < 1000: person 24, truck 27, train 31 have instances -> crowd;
    # out of roi 3, ego vehicle 1, wall 12 have none -> stuff
    assert counts(dataset) == {(3, False): 4, (1, False): 1, (12, False): 1,
                               (24, True): 1, (27, True): 1, (31, True): 1}
    assert sum(a.mask.area for a in dataset.annotations) == 4 * 5
    assert dataset.findings == []
    assert len(dataset.categories) == 33 and 0 not in dataset.categories


def test_datumaro_16bit_instance_ids_survive(conformance_dir):
    dataset = cityscapes.read(conformance_dir / DATUMARO / "train_dataset")
    assert len(dataset.images) == 4
    assert counts(dataset) == {(3, False): 4, (12, False): 1, (27, False): 2, (24, False): 1,
                               (31, False): 1, (1, False): 1}
    values = sorted(a.attributes["cityscapes_value"] for a in dataset.annotations)
    assert values == [3, 3, 3, 3, 12, 1024, 24001, 27001, 27002, 31001]  # never truncated to 8 bits
    trucks = [a for a in dataset.annotations if a.category_id == 27]
    assert [(a.attributes["instance_number"], a.mask.area) for a in trucks] == [(1, 1), (2, 2)]
    # 1024 = instance 24 of "ego vehicle", a class without instances: kept, and flagged
    assert codes(dataset) == {"cityscapes-stuff-instance": 1}
    assert dataset.findings[0].severity == "warning" and dataset.findings[0].split == "val"


def test_mmseg_frame_instances_and_stuff(conformance_dir):
    dataset = cityscapes.read(conformance_dir / MMSEG)
    (image,) = dataset.images
    assert (image.split, image.group, image.height, image.width) == ("val", "frankfurt", 128, 256)
    assert image.path.name == "frankfurt_000000_000294_leftImg8bit.png"
    stuff = (1, 2, 3, 4, 7, 8, 11, 13, 17, 20, 21, 23)
    assert counts(dataset) == {(24, False): 4, (26, False): 3, **{(c, False): 1 for c in stuff}}
    areas = {a.attributes["cityscapes_value"]: a.mask.area for a in dataset.annotations}
    assert areas[26002] == 1572 and areas[24000] == 6 and areas[11] == 12744
    assert sum(areas.values()) == 128 * 256  # no 0 (unlabeled) pixel in this frame
    assert dataset.findings == []  # labelIds agree with instanceIds everywhere


def test_without_instance_ids_labelids_give_one_annotation_per_class(mmseg_copy):
    (mmseg_copy / f"{FRAME}_instanceIds.png").unlink()
    dataset = cityscapes.read(mmseg_copy)
    assert counts(dataset) == {(c, False): 1 for c in (1, 2, 3, 4, 7, 8, 11, 13, 17, 20, 21, 23, 24, 26)}
    assert {a.category_id: a.mask.area for a in dataset.annotations}[26] == 1802


# ------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("relative", [MMSEG, f"{DATUMARO}/dataset"])
def test_conformance_write_read_is_identical(conformance_dir, tmp_path, relative):
    source = cityscapes.read(conformance_dir / relative)
    report = cityscapes.write(source, tmp_path / "out", workers=1)
    assert report.changes == [] and report.annotations_written == len(source.annotations)
    assert not (tmp_path / "out/gtFine/segdata_classes.json").exists()  # the standard table needs none
    again = cityscapes.read(tmp_path / "out")

    def facts(dataset):
        return [(a.category_id, a.iscrowd, a.attributes["cityscapes_value"], a.mask.rle)
                for a in dataset.annotations]

    assert facts(again) == facts(source)
    largest = max(int(read_png(p).max()) for p in (tmp_path / "out/gtFine").rglob("*_instanceIds.png"))
    assert largest == (26002 if relative == MMSEG else 31)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def non_overlapping(dataset: Dataset) -> list[Annotation]:
    """Non-crowd annotations that share no pixel with another non-crowd annotation of their image."""
    kept = []
    for _image, anns in dataset.iter_images():
        solid = [a for a in anns if not a.iscrowd and a.mask is not None and not a.defect]
        cover = sum(a.mask.to_bitmap().astype(np.int32) for a in solid) if solid else None
        kept += [a for a in solid if cover[a.mask.to_bitmap().astype(bool)].max() == 1]
    return kept


def test_coco_to_cityscapes_to_coco_keeps_masks_and_categories(samples_dir, tmp_path):
    source = converters.read(samples_dir / "coco")
    report = cityscapes.write(source, tmp_path / "cs", workers=2)
    assert report.images_written == 60 and report.annotations_written == 277
    assert report.counts() == {"overlap-cut": 102}
    back = cityscapes.read(tmp_path / "cs")
    assert back.findings == []
    assert {c.id: (c.name, c.supercategory, c.isthing) for c in back.categories.values()} == \
        {c.id: (c.name, c.supercategory, c.isthing) for c in source.categories.values()}
    assert [(i.split, i.width, i.height) for i in back.images] == \
        [(i.split, i.width, i.height) for i in source.images]
    assert sum(a.iscrowd for a in back.annotations) == sum(a.iscrowd for a in source.annotations) == 3

    by_image = back.annotations_by_image()
    image_of = {(i.split, i.id): i.file_name.split("/")[-1].removesuffix("_leftImg8bit.png")
                for i in back.images}
    read_back = {}
    for (split, image_id), anns in by_image.items():
        for ann in anns:
            read_back[(split, image_of[(split, image_id)], ann.mask.rle["counts"])] = ann
    stems = {(i.split, i.id): i.file_name.removesuffix(".jpg") for i in source.images}
    checked = 0
    for ann in non_overlapping(source):
        copy = read_back[(ann.split, stems[(ann.split, ann.image_id)], ann.mask.rle["counts"])]
        assert copy.category_id == ann.category_id and not copy.iscrowd
        checked += 1
    assert checked == 74  # every non-crowd annotation of the sample that no other one overlaps

    converters.get("coco").write(back, tmp_path / "coco", workers=1)
    again = coco.read(tmp_path / "coco")
    assert len(again.annotations) == len(back.annotations) == 277
    mine = {(a.split, a.id): a for a in back.annotations}
    for ann in again.annotations:
        assert np.array_equal(ann.mask.to_bitmap(), mine[(ann.split, ann.id)].mask.to_bitmap())
        assert (ann.category_id, ann.iscrowd) == (mine[(ann.split, ann.id)].category_id,
                                                  mine[(ann.split, ann.id)].iscrowd)


def test_write_encodes_ids_like_cityscapes_scripts(tmp_path):
    """Things id·1000 + n (n from 0 per class), crowd and stuff the id alone, void -> 0, 16 bits kept."""
    def box(x0, x1):
        return Mask.from_polygons([[x0, 0, x1, 0, x1, 2, x0, 2]], 2, 8)

    image = ImageRecord(1, "a_leftImg8bit.png", 8, 2, "val", "ulm")
    dataset = Dataset(cityscapes._standard_categories(), [image],
                      [Annotation(1, 1, 7, box(0, 2), split="val"),                # road, stuff
                       Annotation(2, 1, 26, box(2, 3), split="val"),               # car 0
                       Annotation(3, 1, 26, box(3, 4), split="val"),               # car 1
                       Annotation(4, 1, 24, box(4, 5), split="val"),               # person 0
                       Annotation(5, 1, 33, box(5, 6), iscrowd=True, split="val"),  # bicyclegroup
                       ])
    dataset.images[0].void = box(7, 8)
    report = cityscapes.write(dataset, tmp_path, workers=1, overwrite=True)
    instance_ids = read_png(tmp_path / "gtFine/val/ulm/a_gtFine_instanceIds.png")
    label_ids = read_png(tmp_path / "gtFine/val/ulm/a_gtFine_labelIds.png")
    assert instance_ids.dtype == np.uint16 and label_ids.dtype == np.uint8
    assert instance_ids[0].tolist() == [7, 7, 26000, 26001, 24000, 33, 0, 0]
    assert label_ids[0].tolist() == [7, 7, 26, 26, 24, 33, 0, 0]
    assert report.counts() == {"void-as-unlabeled": 1}


# ------------------------------------------------------------------------------------- bad input


def test_label_png_size_differs_from_photo(mmseg_copy, tmp_path):
    photo = mmseg_copy / "leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png"
    Image.new("RGB", (200, 100)).save(photo)
    dataset = cityscapes.read(mmseg_copy)
    assert codes(dataset) == {"label-size-mismatch": 1}
    assert "128×256" in dataset.findings[0].message and "100×200" in dataset.findings[0].message
    assert len(dataset.annotations) == 19
    assert {a.defect for a in dataset.annotations} == {"label-size-mismatch"}
    report = cityscapes.write(dataset, tmp_path / "out", workers=1)
    assert report.counts() == {"skipped": 19} and report.annotations_written == 0


def test_value_not_in_table_is_flagged(mmseg_copy):
    for kind in ("labelIds", "instanceIds"):
        path = mmseg_copy / f"{FRAME}_{kind}.png"
        values = read_png(path).copy()
        values[0, :3] = 40
        Image.fromarray(values).save(path)
    dataset = cityscapes.read(mmseg_copy)
    assert codes(dataset) == {"category-unknown": 1}
    (unknown,) = [a for a in dataset.annotations if a.defect]
    assert (unknown.category_id, unknown.mask.area, unknown.defect) == (40, 3, "category-unknown")


def test_label_ids_and_instance_ids_disagree(mmseg_copy):
    path = mmseg_copy / f"{FRAME}_labelIds.png"
    values = read_png(path).copy()
    assert values[0, 0] != 21
    values[0, 0] = 21
    Image.fromarray(values).save(path)
    dataset = cityscapes.read(mmseg_copy)
    assert codes(dataset) == {"cityscapes-label-mismatch": 1}
    assert dataset.findings[0].details["pixels"] == 1
    assert len(dataset.annotations) == 19 and not any(a.defect for a in dataset.annotations)


def test_polygons_json_size_differs_from_png(mmseg_copy):
    (mmseg_copy / f"{FRAME}_polygons.json").write_text(json.dumps(
        {"imgHeight": 1024, "imgWidth": 2048, "objects": []}))
    dataset = cityscapes.read(mmseg_copy)
    assert codes(dataset) == {"polygons-size-mismatch": 1}
    assert "1024×2048" in dataset.findings[0].message


def test_polygons_only_are_rasterized(tmp_path):
    folder = tmp_path / "gtFine/train/bonn"
    folder.mkdir(parents=True)
    objects = [{"label": "road", "polygon": [[0, 0], [10, 0], [10, 4], [0, 4]]},
               {"label": "car", "polygon": [[2, 1], [6, 1], [6, 3], [2, 3]]},
               {"label": "cargroup", "polygon": [[6, 1], [9, 1], [9, 3], [6, 3]]},
               {"label": "flying saucer", "polygon": [[0, 0], [1, 0], [1, 1]]},
               {"label": "person", "polygon": [[0, 0], [1, 0], [1, 1]], "deleted": 1}]
    (folder / "bonn_000000_000019_gtFine_polygons.json").write_text(
        json.dumps({"imgHeight": 4, "imgWidth": 10, "objects": objects}))
    assert cityscapes.sniff(tmp_path)
    dataset = cityscapes.read(tmp_path)
    assert [(a.category_id, a.iscrowd, a.mask.area if a.mask else None) for a in dataset.annotations] == [
        (7, False, 40), (26, False, 8), (26, True, 6), (-1, False, None)]
    assert codes(dataset) == {"category-unknown": 1, "cityscapes-deleted-objects": 1,
                              "polygons-rasterized": 1}
    assert (dataset.images[0].height, dataset.images[0].width) == (4, 10)


@pytest.mark.parametrize("content", [pytest.param(b"", id="zero-bytes"),
                                     pytest.param(b"not a png", id="garbage")])
def test_unreadable_png_names_the_file(mmseg_copy, content):
    path = mmseg_copy / f"{FRAME}_instanceIds.png"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=r"frankfurt_000000_000294_gtFine_instanceIds.png: not an image"):
        cityscapes.read(mmseg_copy)


def test_colour_png_as_label_ids_is_refused(mmseg_copy):
    (mmseg_copy / f"{FRAME}_instanceIds.png").unlink()
    Image.new("RGB", (256, 128)).save(mmseg_copy / f"{FRAME}_labelIds.png")
    with pytest.raises(FormatError, match=r"labelIds.png: .*single-channel"):
        cityscapes.read(mmseg_copy)


# ------------------------------------------------------------------------------------ write refusals


def tiny(categories: dict[int, Category], annotations: int = 1) -> Dataset:
    mask = Mask.from_bitmap(np.ones((2, 2), bool))
    cat_id = next(iter(categories))
    return Dataset(categories, [ImageRecord(5, "x.png", 2, 2, "train")],
                   [Annotation(i, 5, cat_id, mask, split="train") for i in range(annotations)])


@pytest.mark.parametrize(("categories", "message"), [
    pytest.param({0: Category(0, "bg")}, r"category 0 \(bg\).*1–255", id="zero"),
    pytest.param({300: Category(300, "big", isthing=False)}, r"category 300 \(big\).*1–255", id="above-255"),
    pytest.param({90: Category(90, "toothbrush")}, r"category 90 \(toothbrush\).*above id 64",
                 id="thing-above-64"),
])
def test_write_refuses_ids_cityscapes_cannot_hold(tmp_path, categories, message):
    with pytest.raises(UsageError, match=message):
        cityscapes.write(tiny(categories), tmp_path, workers=1)


def test_write_refuses_a_thousand_and_one_instances(tmp_path):
    with pytest.raises(UsageError, match=r"image 5, split train: more than 1000 instances of category 26"):
        cityscapes.write(tiny({26: Category(26, "car")}, annotations=1001), tmp_path, workers=1)
    assert cityscapes.write(tiny({26: Category(26, "car")}, annotations=1000), tmp_path / "ok",
                            workers=1).images_written == 1


def test_write_refuses_two_images_on_one_file(tmp_path):
    dataset = Dataset({26: Category(26, "car")}, [ImageRecord(1, "a/x.jpg", 2, 2, "train"),
                                                  ImageRecord(2, "b/x.png", 2, 2, "train")], [])
    with pytest.raises(UsageError, match="images 1 and 2 would both be written to gtFine/train/default/x_"):
        cityscapes.write(dataset, tmp_path, workers=1)


# ---------------------------------------------------------------------------------------- command line


def test_cli_convert_and_info(samples_dir, tmp_path):
    done = run_segdata("convert", samples_dir / "coco", tmp_path / "cs", "--to", "cityscapes")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "cs/gtFine").rglob("*_gtFine_instanceIds.png"))) == 60
    info = run_segdata("info", tmp_path / "cs")
    assert info.returncode == 0, info.stderr
    assert "cityscapes" in info.stdout


def test_image_with_only_a_colour_png_is_cityscapes_no_labels(samples_dir, tmp_path):
    folder = Path(shutil.copytree(samples_dir / "cityscapes", tmp_path / "cs"))
    frame = folder / "gtFine/test/default/scene_0051_gtFine"
    Path(f"{frame}_instanceIds.png").unlink()
    near = cityscapes.read(folder)  # near miss: labelIds alone still labels the image
    assert not [f for f in near.findings if f.code == "cityscapes-no-labels"]
    Path(f"{frame}_labelIds.png").rename(f"{frame}_color.png")
    dataset = cityscapes.read(folder)
    found = [f for f in dataset.findings if f.code == "cityscapes-no-labels"]
    image = next(i for i in dataset.images if i.split == "test" and "scene_0051" in i.file_name)
    assert [(f.split, f.image_id, f.severity, f.path) for f in found] == [
        ("test", image.id, "warning", f"{frame}_color.png")]
    assert "no labelIds, instanceIds or polygons.json for this image (found only color)" in found[0].message
    assert not [a for a in dataset.annotations if a.split == "test" and a.image_id == image.id]


# ------------------------------------------------------------- columns kept, masks decoded where used


def _eager(ds: Dataset, gt_dir: Path) -> list[Annotation]:
    """Each image's annotations decoded at once from its first label file (instanceIds, labelIds,
    polygons.json), as the reader did before it kept columns; ids, categories, crowd flags and defects as
    the read judged them."""
    judged = iter(zip(*(annotation_values(ds.annotations, name).tolist()
                        for name in ("id", "image_id", "category_id", "iscrowd", "defect"))))
    expected = []
    for image, _anns in ds.iter_images():
        folder = gt_dir / image.split / image.group
        stem = cityscapes._stem(image)
        items = []
        for kind in ("instanceIds", "labelIds"):
            if (folder / f"{stem}_gtFine_{kind}.png").is_file():
                values = read_label_png(folder / f"{stem}_gtFine_{kind}.png")
                items = [(Mask.from_bitmap(values == v), {"cityscapes_value": v, **(
                    {"instance_number": v % 1000} if kind == "instanceIds" and v >= 1000 else {})})
                    for v in np.unique(values).tolist() if v]
                break
        else:
            if (folder / f"{stem}_gtFine_polygons.json").is_file():
                objects = json.loads((folder / f"{stem}_gtFine_polygons.json").read_bytes())["objects"]
                items = [(_rasterized(o, image), {"label": o["label"], "source": "polygons"})
                         for o in objects if not o.get("deleted")]
        for mask, attributes in items:
            ann_id, image_id, category_id, iscrowd, defect = next(judged)
            expected.append(Annotation(ann_id, image_id, category_id, mask if category_id != -1 else None,
                                       iscrowd, split=image.split, defect=defect, attributes=attributes))
    assert next(judged, None) is None
    return expected


def _rasterized(obj: dict, image: ImageRecord) -> Mask | None:
    try:
        return Mask.from_polygons([[float(c) for point in obj["polygon"] for c in point]], image.height,
                                  image.width)
    except (MaskError, TypeError, ValueError):
        return None


@pytest.mark.parametrize("relative", [f"{DATUMARO}/dataset", f"{DATUMARO}/train_dataset", MMSEG])
def test_a_read_keeps_columns_and_gives_the_masks_decoded_at_once(conformance_dir, relative):
    ds = cityscapes.read(conformance_dir / relative)
    assert_equals_eager(ds, _eager(ds, conformance_dir / relative / "gtFine"))


def test_the_sample_and_label_ids_alone_read_the_same_from_columns(samples_dir, mmseg_copy):
    ds = cityscapes.read(samples_dir / "cityscapes")
    assert_equals_eager(ds, _eager(ds, samples_dir / "cityscapes" / "gtFine"))
    (mmseg_copy / f"{FRAME}_instanceIds.png").unlink()
    ds = cityscapes.read(mmseg_copy)
    assert_equals_eager(ds, _eager(ds, mmseg_copy / "gtFine"))


def test_polygons_read_the_same_from_columns(tmp_path):
    folder = tmp_path / "gtFine/train/bonn"
    folder.mkdir(parents=True)
    objects = [{"label": "road", "polygon": [[0, 0], [10, 0], [10, 4], [0, 4]]},
               {"label": "person", "polygon": [[0, 0], [1, 0], [1, 1]], "deleted": 1},
               {"label": "cargroup", "polygon": [[6, 1], [9, 1], [9, 3], [6, 3]]},
               {"label": "flying saucer", "polygon": [[0, 0], [1, 0], [1, 1]]},
               {"label": "car", "polygon": [[2, 1], [6, 1]]},
               {"label": "car", "polygon": "nowhere"},
               {"label": "car", "polygon": [[2, 1], [6, 1], [6, 3], [2, 3]], "note": "kept in the file"}]
    for frame in ("000019", "000020"):
        (folder / f"bonn_000000_{frame}_gtFine_polygons.json").write_text(
            json.dumps({"imgHeight": 4, "imgWidth": 10, "objects": objects}))
    photos = tmp_path / "leftImg8bit/train/bonn"
    photos.mkdir(parents=True)
    Image.new("RGB", (12, 6)).save(photos / "bonn_000000_000020_leftImg8bit.png")
    ds = cityscapes.read(tmp_path)
    expected = _eager(ds, tmp_path / "gtFine")
    assert_equals_eager(ds, expected)
    assert [(a.category_id, a.iscrowd, a.defect, a.mask.shape_hw if a.mask else None) for a in expected] == [
        (7, False, None, (4, 10)), (26, True, None, (4, 10)), (-1, False, "category-unknown", None),
        (26, False, "polygon-box-ambiguous", None), (26, False, "polygon-invalid", None),
        (26, False, None, (4, 10)), (7, False, "polygons-size-mismatch", (6, 12)),
        (26, True, "polygons-size-mismatch", (6, 12)), (-1, False, "category-unknown", None),
        (26, False, "polygon-box-ambiguous", None), (26, False, "polygon-invalid", None),
        (26, False, "polygons-size-mismatch", (6, 12))]


def test_images_read_on_two_processes_give_the_one_process_read(samples_dir, monkeypatch, tmp_path):
    folder = Path(shutil.copytree(samples_dir / "cityscapes", tmp_path / "cs"))
    frames = folder / "gtFine/train/default"
    labels = read_png(frames / "scene_0002_gtFine_labelIds.png").copy()
    labels[0, :2] = 40  # a class the table lacks, and a pixel instanceIds names otherwise
    Image.fromarray(labels).save(frames / "scene_0002_gtFine_labelIds.png")
    (frames / "scene_0003_gtFine_instanceIds.png").unlink()  # labelIds alone
    Path(frames / "scene_0004_gtFine_labelIds.png").rename(frames / "scene_0004_gtFine_color.png")
    (frames / "scene_0004_gtFine_instanceIds.png").unlink()  # no labels
    (frames / "scene_0005_gtFine_polygons.json").write_text(json.dumps(  # polygons of another size
        {"imgHeight": 4, "imgWidth": 10, "objects": [{"label": "car", "polygon": [[0, 0], [3, 0], [3, 3]]}]}))
    city = folder / "gtFine/val/bonn"
    city.mkdir()
    objects = [{"label": "flying saucer", "polygon": [[0, 0], [1, 0], [1, 1]]},
               {"label": "car", "polygon": [[2, 1], [6, 1], [6, 3]]}]
    (city / "bonn_000000_000019_gtFine_polygons.json").write_text(json.dumps(
        {"imgHeight": 4, "imgWidth": 10, "objects": objects}))
    one, pids = read_alike_on_two_processes(lambda: cityscapes.read(folder), cityscapes, "_read_image",
                                            monkeypatch, tmp_path)
    assert set(codes(one)) == {"category-unknown", "cityscapes-label-mismatch", "cityscapes-no-labels",
                               "polygons-size-mismatch", "polygons-rasterized"}
    assert len(pids) == len(one.images) == 61
    firsts = {}
    for ann in one.annotations:
        firsts.setdefault(ann.split, ann.id)
    assert firsts == {"train": 1, "val": 1, "test": 1}  # numbered per split
    (frames / "scene_0007_gtFine_instanceIds.png").write_bytes(b"not a png")
    with pytest.raises(FormatError, match=r"scene_0007_gtFine_instanceIds.png: not an image"):
        cityscapes.read(folder)


def test_a_label_file_changed_after_reading_is_an_error_naming_it(mmseg_copy):
    dataset = cityscapes.read(mmseg_copy)
    (mmseg_copy / f"{FRAME}_instanceIds.png").write_bytes(b"")
    with pytest.raises(FormatError, match=r"frankfurt_000000_000294_gtFine_instanceIds\.png: not an image"):
        list(dataset.annotations)
