"""Tests of ``segdata/stats.py`` (and its report / CLI faces): every count checked against a known answer."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from segdata.compose import ComposeError
from segdata.errors import UsageError
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord
from segdata.report import write_stats_plots
from segdata.stats import _class_table, _clean, _Tally, class_stats, suggested_weights
from tests.conftest import run_segdata


def _box(x0: int, y0: int, x1: int, y1: int, height: int, width: int) -> Mask:
    return Mask.from_polygons([[x0, y0, x1, y0, x1, y1, x0, y1]], height, width)


def _known_dataset() -> Dataset:
    """Four images, pixel counts known by hand.

    train 1 (10×20): a = x 0–10 (100 px), b = x 5–15, y 0–4 (40 px); they share 20 px.
    train 2 (10×10): crowd a 4×4 (16 px, void), b 5×5 (25 px).
    val 3 (10×10): nothing.  val 4 (10×10): c 2×2 (4 px), a class train never has.
    """
    images = [ImageRecord(1, "1.jpg", 20, 10, split="train"), ImageRecord(2, "2.jpg", 10, 10, split="train"),
              ImageRecord(3, "3.jpg", 10, 10, split="val"), ImageRecord(4, "4.jpg", 10, 10, split="val")]
    anns = [Annotation(1, 1, 1, _box(0, 0, 10, 10, 10, 20), score=0.9, split="train"),
            Annotation(2, 1, 2, _box(5, 0, 15, 4, 10, 20), score=0.1, split="train"),
            Annotation(3, 2, 1, _box(0, 0, 4, 4, 10, 10), iscrowd=True, split="train"),
            Annotation(4, 2, 2, _box(5, 5, 10, 10, 10, 10), score=0.5, split="train"),
            Annotation(5, 4, 3, _box(0, 0, 2, 2, 10, 10), score=0.5, split="val")]
    categories = {1: Category(1, "a"), 2: Category(2, "b"), 3: Category(3, "c")}
    return Dataset(categories, images, anns)


def _row(table, class_id):
    return table.set_index("id").loc[class_id]


# image 1 under each policy: pixels of a, of b, and void (contested made void)
POLICIES = [
    pytest.param("smaller-on-top", 80, 40, 0, id="smaller-on-top"),
    pytest.param("larger-on-top", 100, 20, 0, id="larger-on-top"),
    pytest.param("later-wins", 80, 40, 0, id="later-wins"),
    pytest.param("score", 100, 20, 0, id="score"),
    pytest.param("void", 80, 20, 20, id="void"),
]


@pytest.mark.parametrize(("overlap", "a_px", "b_px", "void_px"), POLICIES)
def test_known_counts_are_exact_for_every_policy(overlap, a_px, b_px, void_px):
    stats = class_stats(_known_dataset(), overlap=overlap, workers=1)
    table = stats.classes
    background = 200 - a_px - b_px - void_px + (100 - 16 - 25) + 100 + 96
    expected = {  # id: pixels, area_sum, crowd_area_sum, images, pixel_images, instances, crowd
        0: (background, 0, 0, 4, 4, 0, 0),
        1: (a_px, 100, 16, 2, 1, 1, 1),
        2: (b_px + 25, 65, 0, 2, 2, 2, 0),
        3: (4, 4, 0, 1, 1, 1, 0),
    }
    columns = ["pixels", "area_sum", "crowd_area_sum", "images", "pixel_images", "instances", "crowd"]
    for class_id, values in expected.items():
        assert tuple(int(v) for v in _row(table, class_id)[columns]) == values, class_id
    crowd_void = 16
    assert int(table["pixels"].sum()) + void_px + crowd_void == 500
    assert _row(table, 3)["pixel_share_all"] == pytest.approx(4 / 500)
    labelled = a_px + b_px + 25 + 4
    assert _row(table, 1)["pixel_share_labelled"] == pytest.approx(a_px / labelled)
    assert np.isnan(_row(table, 0)["pixel_share_labelled"])
    assert table[["small", "medium", "large"]].sum().tolist() == [4, 0, 0]
    train, val = stats.by_split["train"], stats.by_split["val"]
    assert int(_row(train, 2)["pixels"]) == b_px + 25 and int(_row(val, 3)["pixels"]) == 4
    assert int(_row(val, 0)["pixels"]) == 196 and int(_row(train, 3)["images"]) == 0


def test_known_split_comparison_images_and_alerts():
    stats = class_stats(_known_dataset(), workers=1)
    assert stats.split_tests["absent_from_reference"] == {"val": [3]}
    assert stats.split_tests["js_distance"]["val"] == pytest.approx(1.0)  # disjoint supports
    assert "class-absent-from-train" in {a["code"] for a in stats.alerts}
    images = stats.images.set_index("split")
    assert images.loc["(all)", "unannotated_images"] == 1
    assert images.loc["train", "instances_per_image_max"] == 2
    assert images.loc["val", "classes_per_image_mean"] == pytest.approx(0.5)
    assert stats.imbalance["instances"]["ratio"] == pytest.approx(2.0)
    assert stats.imbalance["images"]["min_class"] == 3
    data = json.loads(json.dumps(stats.to_dict()))  # plain JSON: no NaN, no NumPy types
    assert data["schema_version"] == 1 and set(data["splits"]) == {"train", "val"}


@pytest.mark.parametrize("overlap", ["smaller-on-top", "larger-on-top", "later-wins", "score", "void", "error"])
def test_known_counts_without_overlaps_are_the_same_exact_counts_under_every_policy(overlap):
    """Without annotation 2 nothing overlaps, so even ``error`` counts, and every policy agrees."""
    dataset = _known_dataset()
    dataset = Dataset(dataset.categories, dataset.images, [a for a in dataset.annotations if a.id != 2])
    table = class_stats(dataset, overlap=overlap, workers=1).classes
    columns = ["pixels", "area_sum", "images", "instances", "crowd"]
    assert {i: tuple(int(v) for v in _row(table, i)[columns]) for i in (0, 1, 2, 3)} == {
        0: (100 + 59 + 100 + 96, 0, 4, 0, 0), 1: (100, 100, 2, 1, 1), 2: (25, 25, 1, 1, 0), 3: (4, 4, 1, 1, 0)}


def test_overlap_error_policy_refuses():
    with pytest.raises(ComposeError, match="overlap on 20 pixels"):
        class_stats(_known_dataset(), overlap="error", workers=1)


@pytest.mark.parametrize(("options", "message"), [
    pytest.param({"beta": 1.0}, "beta must be in", id="beta"),
    pytest.param({"overlap": "random"}, "overlap must be one of", id="overlap"),
    pytest.param({"rare_images": -1}, "rare_images", id="rare"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(UsageError, match=message):
        class_stats(_known_dataset(), workers=1, **options)


def test_weights_match_published_formulas_on_a_hand_checked_example():
    # shares 1/2, 1/4, 1/4; freq 1/2, 1/4, 1/2; instances 0 (background), 1, 3; beta 1/2
    weights = suggested_weights(np.array([0.5, 0.25, 0.25]), np.array([0.5, 0.25, 0.5]),
                                np.array([0, 1, 3]), 0.5)
    # inverse: 1/p = 2, 4, 4 (mean 10/3) -> 0.6, 1.2, 1.2
    np.testing.assert_allclose(weights["inverse_frequency"], [0.6, 1.2, 1.2])
    # median frequency: median 0.5 / freq
    np.testing.assert_allclose(weights["median_frequency"], [1.0, 2.0, 1.0])
    # ENet: 1 / ln(1.52) = 1 / 0.4187103, 1 / ln(1.27) = 1 / 0.2390169
    np.testing.assert_allclose(weights["enet"], [2.388286, 4.183805, 4.183805], rtol=1e-6)
    # effective number: (1-β)/(1-β^n) = 1, 4/7; normalised to sum 2 -> 14/11, 8/11
    np.testing.assert_allclose(weights["effective_number"], [np.nan, 14 / 11, 8 / 11])


def _independent_counts(coco_dir):
    """Pixels, images, instances, sizes from pycocotools full-image masks, painted smaller-on-top."""
    categories, pixels, area_sum, images, instances, crowd = None, {}, {}, {}, {}, {}
    sizes, areas = {}, {}
    present_px = {}
    total_px = 0
    for split in ("train", "val", "test"):
        data = json.loads((coco_dir / "annotations" / f"instances_{split}.json").read_text())
        categories = [c["id"] for c in data["categories"]]
        by_image = {}
        for ann in data["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
        for image in data["images"]:
            h, w = image["height"], image["width"]
            total_px += h * w
            decoded = []
            for ann in by_image.get(image["id"], []):
                seg = ann["segmentation"]
                if isinstance(seg, list):
                    rle = coco_mask.merge(coco_mask.frPyObjects(seg, h, w))
                elif isinstance(seg["counts"], list):
                    rle = coco_mask.frPyObjects(seg, h, w)
                else:
                    rle = seg
                decoded.append((ann, coco_mask.decode(rle).astype(bool)))
            class_map = np.zeros((h, w), np.int64)
            painted = np.zeros((h, w), bool)
            things = [(a, m) for a, m in decoded if not a["iscrowd"]]
            order = sorted(range(len(things)), key=lambda i: (-int(things[i][1].sum()), i), reverse=True)
            for i in reversed(order):  # lowest priority first, the smallest (later on ties) last
                ann, mask = things[i]
                class_map[mask] = ann["category_id"]
                painted |= mask
            void = np.zeros((h, w), bool)
            for ann, mask in decoded:
                if ann["iscrowd"]:
                    void |= mask & ~painted
            class_map[void] = 255
            counts = np.bincount(class_map.ravel(), minlength=256)
            for value in np.flatnonzero(counts):
                if value != 255:
                    pixels[value] = pixels.get(value, 0) + int(counts[value])
                    present_px[value] = present_px.get(value, 0) + h * w
            for cat in {a["category_id"] for a, _m in decoded}:
                images[cat] = images.get(cat, 0) + 1
            for ann, mask in decoded:
                cat, area = ann["category_id"], int(mask.sum())
                if ann["iscrowd"]:
                    crowd[cat] = crowd.get(cat, 0) + 1
                    continue
                instances[cat] = instances.get(cat, 0) + 1
                area_sum[cat] = area_sum.get(cat, 0) + area
                areas.setdefault(cat, []).append(area)
                size = "small" if area < 32**2 else "medium" if area < 96**2 else "large"
                sizes[(cat, size)] = sizes.get((cat, size), 0) + 1
    return categories, pixels, area_sum, images, instances, crowd, sizes, present_px, areas


def test_coco_sample_matches_an_independent_numpy_computation(samples_dir):
    from segdata.converters import coco

    stats = class_stats(coco.read(samples_dir / "coco"), workers=2)
    categories, pixels, area_sum, images, instances, crowd, sizes, present_px, areas = \
        _independent_counts(samples_dir / "coco")
    table = stats.classes.set_index("id")
    ids = [0, *categories]
    assert table.index.tolist() == ids
    for cat in ids:
        row = table.loc[cat]
        assert int(row["pixels"]) == pixels.get(cat, 0), cat
        if cat:
            assert int(row["area_sum"]) == area_sum.get(cat, 0), cat
            assert int(row["images"]) == images.get(cat, 0), cat
            assert int(row["instances"]) == instances.get(cat, 0), cat
            assert int(row["crowd"]) == crowd.get(cat, 0), cat
            for size in ("small", "medium", "large"):
                assert int(row[size]) == sizes.get((cat, size), 0), (cat, size)
            quantiles = np.quantile(areas[cat], [0, 0.25, 0.5, 0.75, 1])
            np.testing.assert_allclose(row[["area_min", "area_q25", "area_median", "area_q75", "area_max"]]
                                       .to_numpy(float), quantiles)
    share = np.array([pixels[c] for c in ids], float) / sum(pixels.values())
    inverse = (1 / share) / (1 / share).mean()
    freq = np.array([pixels[c] / present_px[c] for c in ids])
    n = np.array([instances[c] for c in categories], float)
    effective = (1 - 0.999) / (1 - 0.999**n)
    np.testing.assert_allclose(table["weight_inverse_frequency"], inverse)
    np.testing.assert_allclose(table["weight_median_frequency"], np.median(freq) / freq)
    np.testing.assert_allclose(table["weight_enet"], 1 / np.log(1.02 + share))
    np.testing.assert_allclose(table["weight_effective_number"].iloc[1:],
                               effective / effective.sum() * len(n))
    assert sum(area_sum.values()) > sum(pixels[c] for c in categories)  # the sample has overlaps


def test_plots_are_written_and_not_blank(tmp_path):
    stats = class_stats(_known_dataset(), workers=1)
    written = write_stats_plots(stats.to_dict(), tmp_path / "plots")
    assert sorted(p.name for p in written) == ["class_frequency.png", "sizes.png", "weights.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.width >= 400 and image.height >= 300
            pixels = np.asarray(image.convert("RGB"))
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10, path.name


def test_csv_has_every_split(tmp_path):
    stats = class_stats(_known_dataset(), workers=1)
    stats.to_csv(tmp_path / "stats.csv")
    lines = (tmp_path / "stats.csv").read_text().splitlines()
    assert lines[0].startswith("split,id,name,") and len(lines) == 1 + 3 * 4


def test_cli_json(samples_dir, tmp_path):
    result = run_segdata("stats", samples_dir / "coco", "--json", "--workers", "2", "--plots", tmp_path / "p",
                         "--csv", tmp_path / "s.csv")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and set(data["splits"]) == {"train", "val", "test"}
    row = data["classes"][1]
    assert {"id", "name", "pixels", "area_sum", "images", "instances", "crowd", "small", "medium", "large",
            "weights"} <= set(row)
    assert set(row["weights"]) == {"inverse_frequency", "median_frequency", "enet", "effective_number"}
    assert set(data["imbalance"]) == {"pixels", "images", "instances"}
    assert (tmp_path / "p" / "weights.png").is_file() and (tmp_path / "s.csv").is_file()


def test_cli_table_help_and_errors(samples_dir, tmp_path):
    table = run_segdata("stats", samples_dir / "coco", "--by", "instances", "--workers", "1")
    assert table.returncode == 0 and "classes by instances" in table.stdout
    assert "$ segdata stats" in run_segdata("stats", "--help").stdout
    usage = run_segdata("stats", samples_dir / "coco", "--by", "colour")
    assert usage.returncode == 2 and "--by" in usage.stderr
    refused = run_segdata("stats", samples_dir / "coco", "--overlap", "error", "--workers", "1")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("segdata: error: ") and "overlap='error' refuses" in refused.stderr


def test_split_tests_equal_scipy_on_random_tables():
    """js_distance and chi2_test are SciPy's jensenshannon and chi2_contingency, without importing them."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    from segdata.stats import chi2_test, js_distance

    rng = np.random.default_rng(7)
    for shape in [(2, 2), (2, 5), (3, 9), (4, 80)]:  # (2, 2): Yates' correction
        for _ in range(25):
            table = rng.integers(1, 60, shape)
            chi2, p_value, dof = chi2_test(table)
            reference = chi2_contingency(table)
            assert chi2 == pytest.approx(reference.statistic, rel=1e-12)
            assert p_value == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-300)
            assert dof == reference.dof
            a, b = table[0] * rng.integers(0, 2, shape[1]), table[1]
            if a.sum():
                assert js_distance(a, b) == pytest.approx(jensenshannon(a, b, base=2), abs=1e-12)


def test_instance_areas_kept_in_four_bytes_widen_for_an_image_of_two_billion_pixels():
    small, huge = _Tally(1), _Tally(1)
    small.add(0, 100, {}, [(1, False, 7), (1, False, 9)])
    huge.add(0, 2**32, {}, [(1, False, 2**31 + 5)])
    assert small.areas[0, 1].itemsize == 4
    small.merge(huge)
    small.add(0, 100, {}, [(1, False, 11)])
    assert small.areas[0, 1].tolist() == [7, 9, 2**31 + 5, 11]
    table = _class_table(small, None, [0, 1], {0: "background", 1: "a"}, 0, 0.9)
    assert table["area_sum"][1] == 27 + 2**31 + 5
    assert (table["area_median"][1], table["area_max"][1]) == (10.0, 2**31 + 5)


def test_cli_json_does_without_pandas_and_agrees_with_the_frames(samples_dir):
    """The JSON is made from the columns (pandas costs every run 0.35 s); the frames, built on demand, agree."""
    from segdata.converters import coco

    code = ("import sys\nfrom segdata.cli import run\n"
            "sys.argv = ['segdata', 'stats', sys.argv[1], '--json', '--workers', '2']\n"
            "try:\n    run()\nexcept SystemExit:\n    pass\nprint('pandas' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(samples_dir / "coco")], capture_output=True, text=True,
                          check=False)
    assert done.stderr.splitlines()[-1] == "False", done.stderr
    data = json.loads(done.stdout)

    def rows(frame):
        return [{k: v for k, v in row.items() if not k.startswith("weight_")}
                for row in _clean(frame.to_dict("records"))]

    stats = class_stats(coco.read(samples_dir / "coco"), workers=1)
    no_weights = [{k: v for k, v in row.items() if k != "weights"} for row in data["classes"]]
    assert rows(stats.classes) == no_weights and len(no_weights) > 2
    for split, table in stats.by_split.items():
        assert rows(table) == [{k: v for k, v in row.items() if k != "weights"}
                               for row in data["splits"][split]["classes"]]
    assert rows(stats.split_comparison) == data["split_comparison"]["classes"]
    assert _clean(stats.images.set_index("split").loc["(all)"].to_dict()) == data["images"]
