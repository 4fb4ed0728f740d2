"""segdata/image_items.py: a dataset's (image, annotations) items, whose slices travel as columns."""

from __future__ import annotations

import pickle

import pytest

from segdata.converters import coco, labelme
from segdata.image_items import ImageBatch
from segdata.model import Dataset
from segdata.stored_images import StoredImages


def _shown(items) -> list:
    return [(repr(image), [repr(a) for a in annotations], *rest) for image, annotations, *rest in items]


def _looked_up(dataset: Dataset) -> list:
    grouped = dataset.annotations_by_image()
    return _shown((image, grouped.get((image.split, image.id), [])) for image in dataset.images)


@pytest.fixture(scope="module", params=["coco-dirty", "labelme", "in memory"])
def dataset(request, samples_dir) -> Dataset:
    if request.param == "labelme":  # images as records, annotations stored one file per image
        return labelme.read(samples_dir / "labelme")
    read = coco.read(samples_dir / "coco-dirty")  # images and annotations stored as columns
    if request.param == "in memory":
        return Dataset(read.categories, list(read.images), list(read.annotations))
    return read


def test_items_are_each_image_with_its_annotations_in_image_order(dataset):
    items = dataset.image_items()
    expected = _looked_up(dataset)
    assert len(items) == len(expected) > 40 and _shown(items) == expected
    assert _shown(dataset.iter_images()) == expected
    assert _shown(items[3:17]) == expected[3:17] and _shown(items[3:][5:9]) == expected[8:12]
    assert _shown([items[-1], items[7]]) == [expected[-1], expected[7]]
    assert not items[len(items):] and _shown(items[-4:]) == expected[-4:]


def test_a_pickled_slice_is_the_same_items(dataset):
    items = dataset.image_items()
    shipped = pickle.loads(pickle.dumps(items[2:40], protocol=pickle.HIGHEST_PROTOCOL))
    assert isinstance(shipped, ImageBatch) and len(shipped) == 38
    assert _shown(shipped) == _looked_up(dataset)[2:40]


def test_stored_images_travel_as_columns_lighter_than_their_items(samples_dir):
    part = coco.read(samples_dir / "coco-dirty").image_items()[2:40]
    shipped = pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
    assert isinstance(pickle.loads(shipped).images, StoredImages)  # records are made by the worker
    assert len(shipped) < 0.8 * len(pickle.dumps(list(part), protocol=pickle.HIGHEST_PROTOCOL))


def test_a_slice_of_one_file_per_image_sends_its_own_paths_and_each_image_only_its_own(samples_dir):
    dataset = labelme.read(samples_dir / "labelme")
    shipped = pickle.loads(pickle.dumps(dataset.image_items()[5:25]))
    assert len(shipped.groups.files) == sum(1 for _, annotations in shipped if annotations) <= 20
    assert {len(annotations._rows.files) for _, annotations in shipped if annotations} == {1}


def test_attached_values_come_as_a_third_item(samples_dir):
    dataset = coco.read(samples_dir / "coco-dirty")
    second = dataset.images[1]
    items = dataset.image_items(attach={(second.split, second.id): "map.png"})
    assert [extra for _, _, extra in items[:3]] == [None, "map.png", None]
    assert [extra for _, _, extra in pickle.loads(pickle.dumps(items[:3]))] == [None, "map.png", None]
    assert [extra for *_, extra in dataset.image_items(attach={})][:2] == [None, None]


def test_a_sequence_attaches_by_position_even_where_ids_repeat(samples_dir):
    dataset = coco.read(samples_dir / "coco-dirty")
    first = dataset.images[0]
    dataset.images = [first, first, *dataset.images[1:]]  # one id twice: a mapping could not tell them apart
    values = [f"v{k}" for k in range(len(dataset.images))]
    items = dataset.image_items(attach=values)
    assert [extra for _, _, extra in items] == values
    assert [extra for _, _, extra in pickle.loads(pickle.dumps(items[1:4]))] == values[1:4]
