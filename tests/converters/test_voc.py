"""converters/voc.py: real VOC folders, round trips, bad input, the CLI."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdata import converters
from segdata.converters import voc
from segdata.converters._raster import masks_by_value
from segdata.errors import FormatError, UsageError
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord, annotation_values
from tests.conftest import run_segdata
from tests.converters.stored_checks import assert_equals_eager, read_alike_on_two_processes

DATUMARO = "openvinotoolkit+datumaro/tests/assets"
LABELME = "wkentaro+labelme/examples"


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def counts(dataset: Dataset) -> dict[int, int]:
    return dict(sorted(Counter(a.category_id for a in dataset.annotations).items()))


def test_datumaro_rgb_colour_coded_maps(conformance_dir):
    ds = voc.read(conformance_dir / DATUMARO / "voc_dataset/voc_dataset1")
    assert [(i.file_name, i.split, i.width, i.height) for i in ds.images] == [
        ("2007_000001.jpg", "train", 20, 10), ("2007_000002.jpg", "test", 20, 10)]
    assert [(a.category_id, a.mask.area) for a in ds.annotations] == [(2, 200)]  # (0,128,0) = bicycle
    assert ds.categories[2].name == "bicycle" and len(ds.categories) == 20 and 0 not in ds.categories
    assert [(f.code, f.image_id) for f in ds.findings] == [("label-map-missing", 2)]  # a test image


@pytest.mark.parametrize("name", ["voc_dataset/voc_dataset2", "voc_dataset/voc_dataset3", "roboflow_dataset/voc"])
def test_detection_only_voc_is_not_claimed_and_refused_clearly(conformance_dir, name):
    folder = conformance_dir / DATUMARO / name
    assert not voc.sniff(folder)
    with pytest.raises(FormatError, match="expected SegmentationClass/ or SegmentationObject/"):
        voc.read(folder)


def test_labelme_instance_voc(conformance_dir):
    ds = voc.read(conformance_dir / LABELME / "instance_segmentation/data_dataset_voc")
    assert [(i.file_name, i.split, i.width, i.height) for i in ds.images] == [
        ("2011_000003.jpg", "", 500, 338), ("2011_000006.jpg", "", 500, 375), ("2011_000025.jpg", "", 500, 375)]
    assert [i.void.area if i.void else 0 for i in ds.images] == [9460, 909, 0]
    assert counts(ds) == {5: 1, 6: 2, 7: 1, 9: 1, 15: 6, 18: 1}
    assert [a.mask.area for a in ds.annotations if a.image_id == 2] == [14690, 11672, 7463, 44403, 991, 14002]
    assert ds.categories[16].name == "potted plant"  # from class_names.txt, not the standard list
    assert ds.findings == []


def test_labelme_semantic_voc_gives_one_annotation_per_class(conformance_dir):
    ds = voc.read(conformance_dir / LABELME / "semantic_segmentation/data_dataset_voc")
    assert [(a.image_id, a.category_id, a.mask.area) for a in ds.annotations] == [
        (1, 5, 873), (1, 15, 32900), (2, 9, 44306), (2, 15, 34791), (2, 18, 14002), (3, 6, 118222), (3, 7, 7256)]
    assert [i.void.area if i.void else 0 for i in ds.images] == [9460, 909, 0]


def test_labelme_instance_voc_round_trips_exactly(conformance_dir, tmp_path):
    source = conformance_dir / LABELME / "instance_segmentation/data_dataset_voc"
    report = voc.write(voc.read(source), tmp_path / "out", workers=1)
    assert report.images_written == 3 and report.annotations_written == 12 and report.changes == []
    for png in sorted((source / "SegmentationClass").glob("*.png")):
        written = pixels(tmp_path / "out/SegmentationClass" / png.name)
        assert np.array_equal(written, pixels(png))
        objects = pixels(source / "SegmentationObject" / png.name)
        again = pixels(tmp_path / "out/SegmentationObject" / png.name)
        void = written == 255  # labelme leaves void 0 in object maps; segdata writes 255 there
        assert np.array_equal(again[~void], objects[~void]) and (again[void] == 255).all()
    with Image.open(tmp_path / "out/SegmentationClass/2011_000003.png") as image:
        assert image.mode == "P"


def test_coco_sample_round_trip_keeps_every_unoverlapped_instance(samples_dir, tmp_path):
    source = converters.read(samples_dir / "coco")
    report = voc.write(source, tmp_path / "voc", workers=2)
    assert report.images_written == 60 and report.counts()["crowd-as-void"] == 3
    again = voc.read(tmp_path / "voc")
    assert again.findings == [] and again.splits == ["train", "val", "test"]
    for split in again.splits:  # each list in image order, written as the images were
        listed = (tmp_path / "voc/ImageSets/Segmentation" / f"{split}.txt").read_text().splitlines()
        assert listed == [Path(i.file_name).stem for i in source.images if i.split == split]
    assert {c.id: c.name for c in again.categories.values()} == {c.id: c.name for c in source.categories.values()}
    back = {(i.split, Path(i.file_name).stem): i.id for i in again.images}
    by_image = again.annotations_by_image()
    checked = 0
    for image, anns in source.iter_images():
        bitmaps = {a.id: a.mask.to_bitmap() for a in anns}
        read_back = by_image.get((image.split, back[(image.split, Path(image.file_name).stem)]), [])
        for ann in anns:
            if ann.iscrowd or any((bitmaps[a.id] & bitmaps[ann.id]).any() for a in anns if a is not ann):
                continue
            same = [b for b in read_back if np.array_equal(b.mask.to_bitmap(), bitmaps[ann.id])]
            assert [b.category_id for b in same] == [ann.category_id], (image.file_name, ann.id)
            checked += 1
    assert checked == 74


def _copy(conformance_dir: Path, tmp_path: Path, kind: str = "instance_segmentation") -> Path:
    return Path(shutil.copytree(conformance_dir / LABELME / kind / "data_dataset_voc", tmp_path / "voc"))


def _save_p(values: np.ndarray, path: Path) -> None:
    image = Image.fromarray(values, "P")
    image.putpalette(voc._voc_palette().ravel().tolist())
    image.save(path)


def test_index_without_class_is_a_finding_and_is_skipped_on_write(conformance_dir, tmp_path):
    folder = _copy(conformance_dir, tmp_path, "semantic_segmentation")
    png = folder / "SegmentationClass/2011_000025.png"
    values = pixels(png).copy()
    values[:10, :10] = 30
    _save_p(values, png)
    ds = voc.read(folder)
    [finding] = ds.findings
    assert (finding.code, finding.image_id, finding.details["value"]) == ("label-value-unknown", 3, 30)
    assert "2011_000025.png" in finding.path and "class value 30 (100 px)" in finding.message
    report = voc.write(ds, tmp_path / "out", workers=1)
    assert [(c.kind, c.detail) for c in report.changes] == [("skipped", "category-unknown")]


def test_size_mismatch_and_zero_byte_png_are_findings(conformance_dir, tmp_path):
    folder = _copy(conformance_dir, tmp_path)
    Image.open(folder / "JPEGImages/2011_000003.jpg").resize((50, 40)).save(folder / "JPEGImages/2011_000003.jpg")
    (folder / "SegmentationObject/2011_000025.png").write_bytes(b"")
    ds = voc.read(folder)
    assert [(f.code, f.image_id) for f in ds.findings] == [("label-map-size-mismatch", 1),
                                                           ("label-map-unreadable", 3)]
    assert "500×338" in ds.findings[0].message and "50×40" in ds.findings[0].message
    assert ds.findings[1].path.endswith("SegmentationObject/2011_000025.png")
    assert [i.defect for i in ds.images] == ["label-map-size-mismatch", None, "label-map-unreadable"]
    report = voc.write(ds, tmp_path / "out", workers=1)
    assert report.images_written == 1
    assert [(c.kind, c.image_id) for c in report.changes if c.annotation_id is None] == [
        ("skipped", 1), ("skipped", 3)]


def test_instance_spanning_two_classes_is_a_warning(conformance_dir, tmp_path):
    folder = _copy(conformance_dir, tmp_path)
    png = folder / "SegmentationClass/2011_000025.png"
    values = pixels(png).copy()
    car = np.flatnonzero(values == 7)
    values.flat[car[: len(car) // 3]] = 8  # a third of the car becomes a cat
    _save_p(values, png)
    ds = voc.read(folder)
    [finding] = ds.findings
    assert finding.code == "instance-class-mixed" and finding.severity == "warning"
    ann = next(a for a in ds.annotations if a.id == finding.annotation_id)
    assert ann.category_id == max(finding.details["classes"], key=finding.details["classes"].get)


def test_labelmap_gives_names_colours_and_void(tmp_path, conformance_dir):
    folder = _copy(conformance_dir, tmp_path)
    (folder / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                         + "".join(f"k{i}:{i},0,0::\n" for i in range(1, 21)) + "ignored:1,2,3::\n")
    ds = voc.read(folder)
    assert ds.categories[15].name == "k15" and ds.categories[15].color == (15, 0, 0) and 21 not in ds.categories
    (folder / "labelmap.txt").write_text("background:0,0,0::\ncar:red::\n")
    with pytest.raises(FormatError, match=r"labelmap.txt: line 2: expected 'name:r,g,b:parts:actions'"):
        voc.read(folder)


def _box_dataset(category_ids, instances=1, crowd=False) -> Dataset:
    image = ImageRecord(1, "a.b.jpg", 20, 20, split="train")
    mask = Mask.from_bitmap(np.pad(np.ones((4, 4), bool), 8))
    anns = [Annotation(i + 1, 1, category_ids[0], mask, split="train") for i in range(instances)]
    if crowd:
        anns.append(Annotation(99, 1, category_ids[0], Mask.from_bitmap(np.pad(np.ones((2, 2), bool), (0, 18))), True,
                               split="train"))
    return Dataset({c: Category(c, f"c{c}") for c in category_ids}, [image], anns)


@pytest.mark.parametrize("ids", [pytest.param([0, 1], id="zero"), pytest.param([1, 255], id="void"),
                                 pytest.param([300], id="wide")])
def test_category_ids_outside_1_254_are_refused(tmp_path, ids):
    with pytest.raises(UsageError, match="VOC class indices are 1..254.*--category-ids contiguous1"):
        voc.write(_box_dataset(ids), tmp_path / "out", workers=1)


def test_more_than_254_instances_is_refused_naming_the_image(tmp_path):
    with pytest.raises(UsageError, match=r"image 1 \(a.b.jpg\): 255 instances do not fit"):
        voc.write(_box_dataset([1], instances=255), tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


def test_crowd_becomes_void_and_dotted_names_keep_their_stem(tmp_path):
    report = voc.write(_box_dataset([3], crowd=True), tmp_path / "out", workers=1)
    kinds = [(c.kind, c.annotation_id) for c in report.changes]
    assert kinds == [("crowd-as-void", 99)]
    ds = voc.read(tmp_path / "out")
    assert ds.images[0].file_name == "a.b.jpg" and ds.images[0].void.area == 4
    assert [a.mask.area for a in ds.annotations] == [16]
    assert (tmp_path / "out/ImageSets/Segmentation/train.txt").read_text() == "a.b\n"


def test_copy_images_keeps_bytes_and_suffix(samples_dir, tmp_path):
    dataset = converters.read(samples_dir / "coco")
    dataset.images = dataset.images[:2]
    voc.write(dataset, tmp_path / "out", copy_images=True, workers=1)
    for image in dataset.images:
        assert (tmp_path / "out/JPEGImages" / image.file_name).read_bytes() == image.path.read_bytes()


def test_cli_convert_info_and_a_broken_input(samples_dir, conformance_dir, tmp_path):
    done = run_segdata("convert", samples_dir / "coco", tmp_path / "voc", "--to", "voc")
    assert done.returncode == 0, done.stderr
    assert run_segdata("info", tmp_path / "voc").returncode == 0
    folder = _copy(conformance_dir, tmp_path / "broken")
    (folder / "class_names.txt").write_text("background\ncar:12\n")
    broken = run_segdata("convert", folder, tmp_path / "out", "--to", "coco")
    assert broken.returncode == 2
    assert broken.stderr.count("\n") == 1 and "class_names.txt: line 2" in broken.stderr


# findings on the sample dataset: each triggered on one edited image, with its near miss ------------------------


def _sample(samples_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(samples_dir / "voc", tmp_path / "voc"))


def _found(dataset: Dataset, code: str) -> list:
    return [f for f in dataset.findings if f.code == code]


def _image_id(dataset: Dataset, stem: str) -> int:
    return next(i.id for i in dataset.images if Path(i.file_name).stem == stem)


def test_object_map_without_class_map_is_class_map_missing(samples_dir, tmp_path):
    folder = _sample(samples_dir, tmp_path)
    (folder / "SegmentationClass/scene_0001.png").unlink()
    dataset = voc.read(folder)
    found = _found(dataset, "class-map-missing")
    assert [(f.split, f.image_id) for f in found] == [("train", _image_id(dataset, "scene_0001"))]
    assert found[0].path.endswith("SegmentationObject/scene_0001.png")
    assert "SegmentationObject PNG without a SegmentationClass PNG" in found[0].message
    mine = [a for a in dataset.annotations if a.image_id == found[0].image_id]
    assert len(mine) == 4 and {a.defect for a in mine} == {"class-map-missing"}
    assert not _found(voc.read(samples_dir / "voc"), "class-map-missing")  # near miss: both maps present


def test_class_pixels_outside_every_instance_are_a_warning(samples_dir, tmp_path):
    folder = _sample(samples_dir, tmp_path)
    objects = pixels(folder / "SegmentationObject/scene_0001.png").copy()
    classes = pixels(folder / "SegmentationClass/scene_0001.png")
    objects[objects == 4] = 0  # instance 4 (class 6, 221 px) loses its object pixels, its class pixels stay
    _save_p(objects, folder / "SegmentationObject/scene_0001.png")
    assert int((classes[objects == 0] == 6).sum()) == 221
    dataset = voc.read(folder)
    found = _found(dataset, "class-pixels-without-instance")
    assert [(f.split, f.image_id, f.severity) for f in found] == [
        ("train", _image_id(dataset, "scene_0001"), "warning")]
    assert "221 px of classes [6] belong to no instance" in found[0].message
    # near miss: the class pixels go with their instance, so nothing is stray
    classes = classes.copy()
    classes[classes == 6] = 0
    _save_p(classes, folder / "SegmentationClass/scene_0001.png")
    assert not _found(voc.read(folder), "class-pixels-without-instance")


def test_instance_over_background_class_pixels_is_instance_class_missing(samples_dir, tmp_path):
    folder = _sample(samples_dir, tmp_path)
    objects = pixels(folder / "SegmentationObject/scene_0001.png")
    classes = pixels(folder / "SegmentationClass/scene_0001.png").copy()
    classes[objects == 4] = 0  # instance 4 now lies on background only
    _save_p(classes, folder / "SegmentationClass/scene_0001.png")
    dataset = voc.read(folder)
    found = _found(dataset, "instance-class-missing")
    assert [(f.split, f.image_id) for f in found] == [("train", _image_id(dataset, "scene_0001"))]
    assert "instance 4 has no class pixel in SegmentationClass" in found[0].message
    flagged = next(a for a in dataset.annotations if a.id == found[0].annotation_id)
    assert flagged.defect == "instance-class-missing" and flagged.mask.area == 221
    # near miss: one class pixel under the instance is enough to give it a class
    classes[np.argwhere(objects == 4)[0][0], np.argwhere(objects == 4)[0][1]] = 6
    _save_p(classes, folder / "SegmentationClass/scene_0001.png")
    assert not _found(voc.read(folder), "instance-class-missing")


def test_rgb_class_map_colour_in_no_table_is_label_colour_unknown(samples_dir, tmp_path):
    folder = _sample(samples_dir, tmp_path)
    path = folder / "SegmentationClass/scene_0001.png"
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB")).copy()
    Image.fromarray(rgb, "RGB").save(path)
    assert not _found(voc.read(folder), "label-colour-unknown")  # near miss: every RGB colour is in labelmap.txt
    rgb[:2, :3] = (1, 2, 3)
    Image.fromarray(rgb, "RGB").save(path)
    dataset = voc.read(folder)
    found = _found(dataset, "label-colour-unknown")
    assert [(f.split, f.image_id) for f in found] == [("train", _image_id(dataset, "scene_0001"))]
    assert found[0].path.endswith("SegmentationClass/scene_0001.png")
    assert "class map colours [(1, 2, 3)] are in no class table" in found[0].message


# columns kept, masks cut again where an image is worked on ---------------------------------------------


def _eager(ds: Dataset, root: Path) -> list[Annotation]:
    """Each image's masks cut at once from the map its annotations come from (its object map when it has
    one), as the reader did before it kept columns; ids, categories and defects as the read judged them."""
    (_names, colors, void), _source = voc._class_table(root, None)
    judged = iter(zip(*(annotation_values(ds.annotations, name).tolist()
                        for name in ("id", "image_id", "category_id", "defect"))))
    expected = []
    for image, anns in ds.iter_images():
        if not len(anns):
            continue
        stem = voc._stem(image)
        object_path = root / "SegmentationObject" / f"{stem}.png"
        if object_path.is_file():
            values, _unknown, _places = voc._read_map(object_path, voc._PALETTE_INDEX)
        else:
            values, _unknown, _places = voc._read_map(root / "SegmentationClass" / f"{stem}.png",
                                                      voc._class_lookup(colors, void))
        for value, mask in masks_by_value(values, skip=(0, 255, *void)).items():
            ann_id, image_id, category_id, defect = next(judged)
            instance = object_path.is_file() and defect not in ("class-map-missing", "instance-class-missing")
            expected.append(Annotation(ann_id, image_id, category_id, mask, split=image.split, defect=defect,
                                       attributes={"instance": value} if instance else {}))
    assert next(judged, None) is None
    return expected


@pytest.mark.parametrize("folder", [
    pytest.param(f"{DATUMARO}/voc_dataset/voc_dataset1", id="datumaro-rgb"),
    pytest.param(f"{LABELME}/instance_segmentation/data_dataset_voc", id="labelme-instances"),
    pytest.param(f"{LABELME}/semantic_segmentation/data_dataset_voc", id="labelme-classes"),
])
def test_a_read_keeps_columns_and_gives_the_masks_cut_at_once(conformance_dir, folder):
    ds = voc.read(conformance_dir / folder)
    assert_equals_eager(ds, _eager(ds, conformance_dir / folder))


def _every_kind(folder: Path) -> Path:
    """The sample with an image of every kind a read tells apart."""
    (folder / "SegmentationClass/scene_0001.png").unlink()  # class-map-missing
    (folder / "SegmentationObject/scene_0002.png").unlink()  # one annotation per class
    objects = pixels(folder / "SegmentationObject/scene_0003.png")
    classes = pixels(folder / "SegmentationClass/scene_0003.png").copy()
    classes[objects == 1] = 0  # instance-class-missing
    classes[objects == 2] = 200  # a class no table names
    _save_p(classes, folder / "SegmentationClass/scene_0003.png")
    for kind in ("SegmentationClass", "SegmentationObject"):  # colour-coded, as Datumaro writes them
        with Image.open(folder / kind / "scene_0004.png") as image:
            image.convert("RGB").save(folder / kind / "scene_0004.png")
    return folder


def test_every_kind_of_image_reads_the_same_from_columns(samples_dir, tmp_path):
    folder = _sample(samples_dir, tmp_path)
    assert_equals_eager(voc.read(folder), _eager(voc.read(folder), folder))
    ds = voc.read(_every_kind(folder))
    assert [f.code for f in ds.findings if f.severity == "error"] == [
        "class-map-missing", "instance-class-missing", "label-value-unknown"]
    expected = _eager(ds, folder)
    assert_equals_eager(ds, expected)
    assert {a.attributes.get("instance") for a in expected if a.image_id == _image_id(ds, "scene_0004")} \
        == {1, 2, 3, 4, 5, 6, 7}


def test_images_read_on_two_processes_give_the_one_process_read(samples_dir, monkeypatch, tmp_path):
    folder = _every_kind(_sample(samples_dir, tmp_path))
    (folder / "SegmentationObject/scene_0005.png").write_bytes(b"not a png")
    _save_p(np.zeros((4, 4), np.uint8), folder / "SegmentationClass/scene_0006.png")  # of another size
    one, pids = read_alike_on_two_processes(lambda: voc.read(folder), voc, "_read_image", monkeypatch,
                                            tmp_path)
    assert {f.code for f in one.findings if f.severity == "error"} == {
        "class-map-missing", "instance-class-missing", "label-value-unknown", "label-map-unreadable",
        "label-map-size-mismatch"}
    assert len(pids) == len(one.images) == 60


def test_a_map_changed_after_reading_is_an_error_naming_it(samples_dir, tmp_path):
    folder = _sample(samples_dir, tmp_path)
    dataset = voc.read(folder)
    _save_p(np.zeros((4, 4), np.uint8), folder / "SegmentationObject/scene_0001.png")
    with pytest.raises(FormatError, match=r"scene_0001.png: the label map changed since it was read"):
        list(dataset.annotations)


def test_two_splits_with_one_file_name_are_refused_naming_both_images(tmp_path):
    images = [ImageRecord(7, "x.jpg", 4, 4, split="train"), ImageRecord(9, "x.jpg", 4, 4, split="val")]
    dataset = Dataset({1: Category(1, "a")}, images, [])
    with pytest.raises(UsageError, match=r"images 7 and 9 would both be written as x \(VOC has one folder"):
        voc.write(dataset, tmp_path / "out", workers=1)
