"""segdata.compose and segdata.semantic: policies against a naive painter, recoverability, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings as hyp_settings, strategies as st
from PIL import Image

from segdata.compose import ComposeError, compose_image, settings
from segdata import converters
from segdata.converters import coco
from segdata.errors import UsageError
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord
from segdata.semantic import map_path, write_maps
from tests.conftest import run_segdata

def _png(path, *, mode=False):
    """Pixel values of a PNG (palette indices, 16-bit values), closing the file; or its mode."""
    with Image.open(path) as image:
        return image.mode if mode else np.asarray(image)


POLICIES = ["later-wins", "smaller-on-top", "larger-on-top", "score", "void"]


# ---------------------------------------------------------------- the naive reference painter

def reference(image, anns, *, overlap, crowd, void_value=255, background_value=0):
    """Full-image masks painted one after another, the way the policies are defined."""
    shape = (image.height, image.width)
    bitmaps = [a.mask.to_bitmap() for a in anns]
    things = [i for i, a in enumerate(anns) if not a.iscrowd]
    count = sum((bitmaps[i].astype(int) for i in things), np.zeros(shape, int))
    contested = count >= 2
    if overlap == "error" and contested.any():
        return "error"
    key = {"smaller-on-top": lambda i: -int(bitmaps[i].sum()), "larger-on-top": lambda i: int(bitmaps[i].sum()),
           "score": lambda i: anns[i].score}.get(overlap, lambda i: 0)
    owner = np.zeros(shape, int)
    crowd_region = np.zeros(shape, bool)
    if crowd != "skip":
        for i, a in enumerate(anns):
            if a.iscrowd:
                crowd_region |= bitmaps[i]
                if crowd == "paint":
                    owner[bitmaps[i]] = i + 1
    for i in sorted(things, key=lambda i: (key(i), i)):  # paint lowest priority first, later wins
        owner[bitmaps[i]] = i + 1
    covered = count >= 1
    tie = np.zeros(shape, bool)
    if overlap in ("smaller-on-top", "larger-on-top", "score"):
        best = np.full(shape, -np.inf)
        for i in things:
            best[bitmaps[i]] = np.maximum(best[bitmaps[i]], key(i))
        n_best = sum(((bitmaps[i]) & (best == key(i))).astype(int) for i in things) if things else 0
        tie = contested & (n_best >= 2)
    void = np.zeros(shape, bool)
    if overlap == "void":
        void |= contested
    if crowd == "void":
        void |= crowd_region & ~covered
    if image.void is not None:
        void |= image.void.to_bitmap()
    owner[void] = 0
    lut = np.array([background_value] + [a.category_id for a in anns])
    classes = lut[owner]
    classes[void] = void_value
    crowd_px = int((crowd_region & ~covered & ~(image.void.to_bitmap() if image.void else False)).sum()) \
        if crowd != "skip" else 0
    hidden = [anns[i].id for i in things if bitmaps[i].any() and not (owner == i + 1).any()]
    return classes, owner, int(contested.sum()), int(tie.sum()), crowd_px, hidden


# ---------------------------------------------------------------- random overlapping scenes

@st.composite
def scenes(draw):
    height, width = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    anns = []
    for index in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["rect", "polygon", "bitmap"]))
        if kind == "rect":
            x0, y0 = draw(st.integers(-2, width)), draw(st.integers(-2, height))
            x1, y1 = x0 + draw(st.integers(1, width + 2)), y0 + draw(st.integers(1, height + 2))
            mask = Mask.from_polygons([[x0, y0, x1, y0, x1, y1, x0, y1]], height, width)
        elif kind == "polygon":
            coords = st.floats(-2, max(height, width) + 2, allow_nan=False).map(lambda v: round(v, 1))
            ring = draw(st.lists(st.tuples(coords, coords), min_size=3, max_size=7))
            mask = Mask.from_polygons([[v for point in ring for v in point]], height, width)
        else:
            bits = draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
            mask = Mask.from_bitmap(np.array(bits).reshape(height, width))
        anns.append(Annotation(100 + index, 1, draw(st.integers(1, 3)), mask,
                               iscrowd=draw(st.integers(0, 5)) == 0,
                               score=draw(st.sampled_from([0.1, 0.5, 0.9]))))
    void = None
    if draw(st.booleans()):
        void = Mask.from_bitmap(np.array(draw(st.lists(st.booleans(), min_size=height * width,
                                                       max_size=height * width))).reshape(height, width))
    return ImageRecord(1, "a.jpg", width, height, void=void), anns


@hyp_settings(max_examples=150, deadline=None)
@given(scene=scenes(), overlap=st.sampled_from(POLICIES + ["error"]),
       crowd=st.sampled_from(["void", "paint", "skip"]))
def test_every_policy_matches_the_naive_painter(scene, overlap, crowd):
    image, anns = scene
    config = settings([1, 2, 3], overlap=overlap, crowd=crowd)
    expected = reference(image, anns, overlap=overlap, crowd=crowd)
    if expected == "error":
        with pytest.raises(ComposeError, match=r"image 1: annotations \d+ and \d+ overlap on \d+ pixels"):
            compose_image(image, anns, config)
        return
    maps = compose_image(image, anns, config)
    classes, owner, contested, ties, crowd_px, hidden = expected
    np.testing.assert_array_equal(maps.class_map, classes)
    np.testing.assert_array_equal(maps.instance_map, owner)
    report = maps.report
    assert report.contested_px == contested
    assert report.won_by_order_px == (0 if overlap == "void" else ties)
    assert report.voided_px == (contested if overlap == "void" else 0)
    assert report.won_by_policy_px + report.won_by_order_px + report.voided_px == contested
    assert report.crowd_px == crowd_px
    assert report.void_px == int((classes == 255).sum())
    assert report.hidden_annotation_ids == hidden


def test_ties_go_to_the_later_annotation_and_are_counted():
    image = ImageRecord(1, "a.jpg", 4, 2)
    square = Mask.from_polygons([[0, 0, 2, 0, 2, 2, 0, 2]], 2, 4)
    maps = compose_image(image, [Annotation(1, 1, 1, square), Annotation(2, 1, 2, square)], settings([1, 2]))
    assert maps.class_map[:, :2].tolist() == [[2, 2], [2, 2]]
    assert (maps.report.contested_px, maps.report.won_by_order_px) == (4, 4)
    assert maps.report.hidden_annotation_ids == [1]


# ---------------------------------------------------------------- the sample dataset, through PNG files

@pytest.fixture(scope="module")
def sample(samples_dir):
    return coco.read(samples_dir / "coco")


def test_maps_recover_every_instance_exactly(sample, tmp_path):
    result = write_maps(sample, tmp_path / "out", instance_ids=True, panoptic=True, workers=2)
    assert result["totals"]["images"] == len(sample.images) and result["totals"]["contested_px"] > 0
    assert result["totals"]["crowd_instances"] > 0
    for image, anns in sample.iter_images():
        relative = map_path(image)
        classes = _png(tmp_path / "out" / relative)
        assert _png(tmp_path / "out" / relative, mode=True) == "P"
        instances = _png(tmp_path / "out" / "instance_ids" / relative).astype(np.int64)
        panoptic_png = tmp_path / "out" / "panoptic" / f"panoptic_{image.split}" / relative.relative_to(image.split)
        assert _png(panoptic_png, mode=True) == "RGB"
        rgb = _png(panoptic_png).astype(np.int64)
        np.testing.assert_array_equal(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2], instances)
        for value, ann in enumerate(anns, start=1):
            if ann.iscrowd:
                continue
            won_by_others = (instances != value) & (instances != 0)
            visible = ann.mask.to_bitmap() & ~won_by_others & (classes != 255)
            np.testing.assert_array_equal(instances == value, visible)
            assert (classes[visible] == ann.category_id).all()
    panoptic = json.loads((tmp_path / "out" / "panoptic" / "panoptic_val.json").read_text())
    assert len(panoptic["annotations"]) == sum(1 for i in sample.images if i.split == "val")
    table = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert [c["id"] for c in table["classes"]] == sorted(sample.categories) and table["void_value"] == 255


def test_panoptic_output_reads_back_with_the_panoptic_reader(sample, tmp_path):
    write_maps(sample, tmp_path / "out", instance_ids=True, panoptic=True, workers=1)
    for split in sample.splits:
        read = converters.read(tmp_path / "out" / "panoptic" / f"panoptic_{split}.json", "coco-panoptic")
        assert read.findings == []  # every stored area and bbox equals the PNG's pixels
        segments = read.annotations_by_image()
        for image in (i for i in sample.images if i.split == split):
            instances = _png(tmp_path / "out" / "instance_ids" / map_path(image)).astype(np.int64)
            got = {ann.id: ann.mask.to_bitmap() for ann in segments.get((split, image.id), [])}
            assert sorted(got) == sorted(set(np.unique(instances)) - {0})
            for value, bitmap in got.items():
                np.testing.assert_array_equal(bitmap, instances == value)


def test_workers_give_identical_bytes(sample, tmp_path):
    write_maps(sample, tmp_path / "one", workers=1)
    write_maps(sample, tmp_path / "two", workers=2)
    for path in (tmp_path / "one").rglob("*.png"):
        assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes()


def test_wide_ids_give_16_bit_maps_and_dots_stay_in_stems(tmp_path):
    image = ImageRecord(1, "shot.v2.jpg", 4, 2, split="train")
    mask = Mask.from_polygons([[0, 0, 2, 0, 2, 2, 0, 2]], 2, 4)
    dataset = Dataset({300: Category(300, "wide")}, [image], [Annotation(1, 1, 300, mask, split="train")])
    result = write_maps(dataset, tmp_path / "out")
    written = tmp_path / "out" / "train" / "shot.v2.png"
    assert result["class_dtype"] == "uint16" and _png(written, mode=True).startswith("I")
    assert _png(written)[0].tolist() == [300, 300, 0, 0]


def test_void_is_white_in_the_palette(sample, tmp_path):
    write_maps(sample, tmp_path / "out", workers=1)
    first = next(p for p in (tmp_path / "out").rglob("*.png"))
    with Image.open(first) as image:
        assert tuple(image.getpalette()[255 * 3:256 * 3]) == (255, 255, 255)


# ---------------------------------------------------------------- bad input, as a table

def _one(mask_hw=(2, 4), category=1, score=0.5):
    return ImageRecord(3, "a.jpg", 4, 2), Annotation(5, 3, category, Mask.from_bitmap(np.ones(mask_hw, bool)),
                                                     score=score)


@pytest.mark.parametrize(("ann", "options", "error", "message"), [
    pytest.param(_one(mask_hw=(3, 4)), {}, ComposeError,
                 r"^annotation 5 \(image 3\): mask is 3×4 \(height×width\) but the image is 2×4$", id="size"),
    pytest.param(_one(category=9), {}, ComposeError, r"annotation 5 \(image 3\): category 9 is not", id="unknown"),
    pytest.param(_one(score=None), {"overlap": "score"}, ComposeError, r"annotation 5 .*needs a score",
                 id="no-score"),
])
def test_bad_annotations_name_image_and_annotation(ann, options, error, message):
    image, annotation = ann
    with pytest.raises(error, match=message):
        compose_image(image, [annotation], settings([1, 2], **options))


@pytest.mark.parametrize(("categories", "options", "message"), [
    pytest.param([0, 1], {}, r"category 0 has the background value 0", id="class-0-vs-background"),
    pytest.param([1, 255], {}, r"category 255 has the void value 255", id="class-is-void"),
    pytest.param([1, 70000], {}, r"category 70000 does not fit a 16-bit", id="too-wide"),
    pytest.param([1], {"void_value": 0}, r"void_value and background_value are both 0", id="void-is-background"),
    pytest.param([1], {"overlap": "z-order"}, r"overlap must be one of", id="policy"),
])
def test_bad_options_are_refused_before_any_work(categories, options, message):
    with pytest.raises(UsageError, match=message):
        settings(categories, **options)


def test_class_zero_is_fine_with_another_background():
    image, ann = _one(category=0)
    maps = compose_image(image, [ann], settings([0, 1], background_value=254))
    assert maps.class_map.tolist() == [[0] * 4] * 2


def test_flagged_annotation_raises_or_is_skipped_and_counted():
    image, ann = _one()
    ann.defect, ann.mask = "rle-size-mismatch", None
    with pytest.raises(ComposeError, match=r"annotation 5 \(image 3\): annotation is unusable \(rle-size"):
        compose_image(image, [ann], settings([1]))
    assert compose_image(image, [ann], settings([1], on_invalid="skip")).report.skipped_annotation_ids == [5]


# ---------------------------------------------------------------- the command

def test_cli_writes_maps_preview_and_json(samples_dir, tmp_path):
    result = run_segdata("semantic", samples_dir / "coco", tmp_path / "out", "--panoptic", "--instance-ids",
                         "--json", "--workers", "2", "--preview", tmp_path / "sheet.png")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["totals"]["images"] == 60 and printed["preview"]["images"] == 8
    assert _png(tmp_path / "sheet.png").shape == (512, 1024, 3)
    assert (tmp_path / "out" / "panoptic" / "panoptic_train.json").is_file()
    help_text = run_segdata("semantic", "--help").stdout
    assert "$ segdata semantic" in help_text


@pytest.mark.parametrize(("category", "rle_size", "options", "message"), [
    pytest.param(0, [3, 4], [], "category 0 has the background value 0", id="class-0"),
    pytest.param(1, [2, 5], [], "annotation 8 (image 3, split train): annotation is unusable "
                                "(rle-size-mismatch)", id="rle-size"),
    pytest.param(1, [3, 4], ["--overlap", "error"], "image 3, split train: annotations 7 and 8 overlap", id="pair"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, category, rle_size, options, message):
    path = tmp_path / "instances_train.json"
    rle = {"size": rle_size, "counts": [0, rle_size[0] * rle_size[1]]}
    path.write_text(json.dumps({
        "images": [{"id": 3, "file_name": "a.jpg", "width": 4, "height": 3}],
        "categories": [{"id": category, "name": "thing"}],
        "annotations": [{"id": 7, "image_id": 3, "category_id": category, "segmentation": [[0, 0, 4, 0, 4, 3]]},
                        {"id": 8, "image_id": 3, "category_id": category, "segmentation": rle}],
    }))
    result = run_segdata("semantic", path, tmp_path / "out", *options)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segdata: error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_two_images_that_map_to_one_png_are_refused_naming_both_before_anything_is_written(tmp_path):
    images = [ImageRecord(i, name, 4, 4, split="train") for i, name in enumerate(["a.jpg", "b.jpg", "a.png"], 1)]
    dataset = Dataset({1: Category(1, "a")}, images, [])
    with pytest.raises(UsageError, match=r"images 1 and 3 would both be written to train/a\.png"):
        write_maps(dataset, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()
    images[2].defect = "image-id-duplicate"  # a defective image is not written: no clash
    assert write_maps(dataset, tmp_path / "out", workers=1)["totals"]["images"] == 2
