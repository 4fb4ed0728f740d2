"""COCO annotations kept in their file (segdata.stored): the same dataset as a whole read, in any number of tasks."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import orjson
import pytest

from segdata import parallel
from segdata.converters import coco
from segdata.errors import FormatError
from segdata.model import annotation_values
from segdata.stored import COLUMNS, AnnotationColumns, AnnotationGroup, StoredAnnotations


def _everything(dataset):
    return [repr(a) for a in dataset.annotations], [repr(f) for f in dataset.findings], [repr(i) for i in dataset.images]


@pytest.fixture
def tiny_tasks(monkeypatch):
    """Reading checks records in tasks of ~2 KB, shared with a helper process."""
    monkeypatch.setattr(coco, "_INDEX_BYTES", 2048)
    monkeypatch.setattr(parallel, "_prepared", 2)


def test_reading_in_small_tasks_on_two_processes_gives_the_one_task_read(samples_dir, monkeypatch):
    path = samples_dir / "coco-dirty" / "annotations" / "instances_train.json"
    one_task = _everything(coco.read(path))
    monkeypatch.setattr(coco, "_INDEX_BYTES", 2048)
    monkeypatch.setattr(parallel, "_prepared", 2)
    stored = coco.read(path)
    assert isinstance(stored.annotations, StoredAnnotations)
    assert _everything(stored) == one_task
    assert path.stat().st_size > 20 * 2048 and len(stored.annotations) > 100


def test_on_a_cluster_reading_checks_records_in_larger_tasks(samples_dir, monkeypatch):
    """A task costs a Dask cluster ~16 ms: there the records go in tasks of _CLUSTER_INDEX_BYTES, same read."""
    path = samples_dir / "coco-dirty" / "annotations" / "instances_train.json"
    one_task = _everything(coco.read(path))
    monkeypatch.setattr(coco, "_INDEX_BYTES", 2048)
    monkeypatch.setattr(coco, "_CLUSTER_INDEX_BYTES", 8 * 2048)
    sent = {}
    real_map = coco.map_images

    def counting_map(fn, tasks, **kwargs):
        tasks = list(tasks)
        assert all(len(starts) for _, _, starts, _ in tasks)
        sent[coco.on_cluster(reading=True)] = [int(stops[-1] - starts[0]) for _, _, starts, stops in tasks]
        return real_map(fn, tasks, **kwargs)

    monkeypatch.setattr(coco, "map_images", counting_map)
    assert _everything(coco.read(path)) == one_task
    monkeypatch.setattr(coco, "on_cluster", lambda reading: True)  # the tasks run here all the same
    assert _everything(coco.read(path)) == one_task
    assert max(sent[False]) < 3 * 2048 and len(sent[True]) < len(sent[False]) / 6
    assert min(sent[True][:-1]) > 6 * 2048


def test_defects_found_by_the_tasks_match_the_reference_messages(tmp_path, tiny_tasks):
    images = [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 3, 0, 3, 2]]},
            {"id": 1, "image_id": 1, "category_id": 9, "segmentation": [[0, 0, 3, 0, 3, 2]]},
            {"id": 2, "image_id": 7, "category_id": 1, "segmentation": []},
            {"id": 3, "image_id": 1, "category_id": 1, "segmentation": {"size": [5, 5], "counts": [25]}},
            {"id": 4, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 1, float("nan")]]}]
    anns += [{"id": 10 + i, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 3, 0, 3, 2] * 40]}
             for i in range(60)]  # enough bytes for several tasks
    anns.append({"id": 99, "image_id": 1, "category_id": 1, "segmentation": {"size": [5, 5], "counts": [25]}})
    text = orjson.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}]})
    path = tmp_path / "instances_train.json"
    path.write_bytes(text)
    dataset = coco.read(path)
    assert isinstance(dataset.annotations, StoredAnnotations)
    assert [(f.code, f.annotation_id) for f in dataset.findings] == [
        ("annotation-id-duplicate", 1), ("category-unknown", 1), ("image-ref-unknown", 2),
        ("rle-size-mismatch", 3), ("polygon-odd-coordinates", 4), ("rle-size-mismatch", 99)]
    assert annotation_values(dataset.annotations, "defect").tolist()[:6] == [
        None, "annotation-id-duplicate", "image-ref-unknown", "rle-size-mismatch", "polygon-odd-coordinates", None]
    assert [a.mask is not None for a in dataset.annotations[:6]] == [True, True, False, False, False, True]


def test_every_later_use_of_an_id_and_every_unknown_category_is_found(tmp_path, tiny_tasks):
    triangle = [[0, 0, 3, 0, 3, 2]]
    anns = [{"id": i, "image_id": 1, "category_id": c, "segmentation": triangle * 40}
            for i, c in [(5, 1), (3, 1), (5, 8), (3, 1), (5, 1), (6, 9), (7, 8)]]
    path = tmp_path / "instances_train.json"
    path.write_bytes(orjson.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
                                   "annotations": anns, "categories": [{"id": 1, "name": "a"}]}))
    dataset = coco.read(path)
    assert [(f.code, f.annotation_id) for f in dataset.findings] == [
        ("annotation-id-duplicate", 5), ("category-unknown", 5), ("annotation-id-duplicate", 3),
        ("annotation-id-duplicate", 5), ("category-unknown", 6), ("category-unknown", 7)]


def test_a_bad_record_in_a_helper_task_names_the_file_and_the_record(tmp_path, tiny_tasks):
    anns = [{"id": i, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 3, 0, 3, 2] * 40]} for i in range(60)]
    del anns[45]["image_id"]
    path = tmp_path / "instances_train.json"
    path.write_bytes(orjson.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
                                   "annotations": anns, "categories": [{"id": 1, "name": "a"}]}))
    with pytest.raises(FormatError, match=r"instances_train\.json: annotation 45: missing required key 'image_id'"):
        coco.read(path)


def test_an_image_group_travels_as_rows_and_decodes_to_the_same_annotations(samples_dir):
    dataset = coco.read(samples_dir / "coco-dirty")
    image = max(dataset.images, key=lambda i: len(dataset.annotations_by_image().get((i.split, i.id), [])))
    group = dataset.annotations_by_image()[(image.split, image.id)]
    assert isinstance(group, AnnotationGroup) and len(group) >= 4
    shipped = pickle.dumps(group)
    assert len(shipped) < 2500  # rows, not polygons
    assert [repr(a) for a in pickle.loads(shipped)] == [repr(a) for a in group]
    by_object = [repr(a) for a in dataset.annotations if (a.split, a.image_id) == (image.split, image.id)]
    assert [repr(a) for a in group] == by_object
    assert annotation_values(group, "category_id").tolist() == [a.category_id for a in group]


def test_images_looked_up_together_get_the_groups_looked_up_one_by_one(samples_dir):
    dataset = coco.read(samples_dir / "coco-dirty")
    grouped = dataset.annotations_by_image()
    keys = [(image.split, image.id) for image in dataset.images][::-1]
    keys += [("train", 10 ** 9), ("no-such-split", keys[0][1]), keys[3]]
    rows, lengths = grouped.rows_of(np.array([s for s, _ in keys], object), np.array([i for _, i in keys]))
    ends = np.cumsum(lengths).tolist()
    together = [[repr(a) for a in rows.cut(end - n, end).build()] for end, n in zip(ends, lengths.tolist())]
    assert together == [[repr(a) for a in grouped.get(k, [])] for k in keys]
    assert lengths[-3:-1].tolist() == [0, 0] and len({s for s, _ in keys[:-3]}) == 3
    assert not grouped.rows_of(np.array(["train"], object), np.array(["7"]))[1].any()  # as get: "7" is no id
    walked = [(image.id, [repr(a) for a in group]) for image, group in dataset.iter_images()]
    assert walked == [(image.id, [repr(a) for a in grouped.get((image.split, image.id), [])])
                      for image in dataset.images]


def test_walking_the_images_keeps_no_parsed_group_behind(samples_dir):
    import gc

    dataset = coco.read(samples_dir / "coco-dirty")
    alive = []
    for _, group in dataset.iter_images():
        list(group)  # parsed: a group keeps its annotations from now on
        alive.append(sum(isinstance(thing, AnnotationGroup) for thing in gc.get_objects()))
    assert len(alive) > 10 and max(alive) <= 2


def test_a_category_map_on_stored_annotations_equals_it_on_the_decoded_list(samples_dir, tiny_tasks):
    from dataclasses import replace

    from segdata.categories import remap_categories
    stored = coco.read(samples_dir / "coco-dirty" / "annotations" / "instances_train.json")
    decoded = replace(stored, annotations=list(stored.annotations))
    mapping = {"2": None, "person": {"id": 20, "name": "human"}}
    (from_store, store_changes), (from_list, list_changes) = (
        remap_categories(data, ids="contiguous1", mapping=mapping) for data in (stored, decoded))
    assert isinstance(from_store.annotations, StoredAnnotations)
    assert [repr(a) for a in from_store.annotations] == [repr(a) for a in from_list.annotations]
    assert store_changes == list_changes
    kinds = [c.kind for c in store_changes]
    assert kinds.count("dropped") == 52 and kinds.count("category-remapped") == len(from_list.annotations) - 36
    assert sorted(set(annotation_values(from_store.annotations, "category_id").tolist())) == list(range(1, 8))


def _records_of(file: str) -> list[dict]:
    """A per-image file's records (what a LabelMe or YOLO reader's loader gives)."""
    return orjson.loads(Path(file).read_bytes())


def test_records_of_one_file_per_image_are_loaded_again_from_that_file_alone(tmp_path):
    import numpy as np

    files, rows = [], []
    for image_id in (1, 2, 3):
        records = [{"id": 10 * image_id + k, "image_id": image_id, "category_id": k + 1,
                    "segmentation": [[0, 0, 3 + k, 0, 3, 2]]} for k in range(2)]
        path = tmp_path / f"{image_id}.json"
        path.write_bytes(orjson.dumps(records))
        files.append(str(path))
        rows += [(image_id - 1, at, r["id"], image_id, r["category_id"]) for at, r in enumerate(records)]
    file, start, ids, image_ids, category_ids = (np.array(column) for column in zip(*rows))
    n = len(rows)
    store = StoredAnnotations(files, ["train"], coco.ANNOTATION_DEFECTS, coco._decode, {
        "file": file, "split": np.zeros(n), "start": start, "id": ids, "image_id": image_ids,
        "category_id": category_ids, "iscrowd": np.zeros(n, bool), "shape": np.zeros(n),
        "defect": np.full(n, -1), "mask_ok": np.ones(n, bool), "face": np.zeros(n)},
        [[3, 6]], load=_records_of)
    group = store.by_image()[("train", 2)]
    assert group._rows.files == (files[1],)  # a helper is sent the one path it reads
    rows, lengths = store.by_image().rows_of(np.array(["train"] * 3, object), np.array([3, 9, 2]))
    assert rows.files == (files[1], files[2]) and lengths.tolist() == [2, 0, 2]  # only these rows' paths
    together = [rows.cut(0, 2), rows.cut(2, 4)]  # an image's rows: only its path
    assert [g.files for g in together] == [(files[2],), (files[1],)]
    assert [a.id for a in together[0].build()] == [30, 31] and [a.id for a in together[1].build()] == [20, 21]
    across = store.rows(np.array([3, 4]))  # rows of two files: both paths sent, the rows renumbered
    assert across.files == (files[1], files[2]) and [a.id for a in across.build()] == [21, 30]
    expected = [coco._decode(r, "train", 3, 6, None, True) for r in _records_of(files[1])]
    assert [repr(a) for a in pickle.loads(pickle.dumps(group))] == [repr(a) for a in expected]
    joined = StoredAnnotations.concat([store, store.with_split("val")])
    assert [a.id for a in joined] == ids.tolist() * 2 and joined.files == tuple(files)
    assert annotation_values(joined, "split").tolist() == ["train"] * n + ["val"] * n


def test_a_record_ends_where_the_next_starts_and_a_selection_or_join_keeps_each_end(samples_dir):
    from dataclasses import replace

    import numpy as np

    store = coco.read(samples_dir / "coco-dirty").annotations  # three files, one per split
    assert isinstance(store, StoredAnnotations) and len(store.files) == 3 and "stop" not in store.columns
    every = [repr(a) for a in store]
    rows = np.arange(0, len(store), 3)
    picked = store.select(rows, annotation_values(store, "category_id")[rows])
    assert "stop" in picked.columns and [repr(a) for a in picked] == [every[r] for r in rows.tolist()]
    joined = StoredAnnotations.concat([picked, store])
    assert "stop" in joined.columns and [repr(a) for a in joined] == [every[r] for r in rows.tolist()] + every
    twice = StoredAnnotations.concat([store, store.with_split("again")])  # the same files twice
    assert "stop" in twice.columns and [repr(a) for a in twice][:len(store)] == every
    unsplit = [repr(replace(a, split="")) for a in twice]
    assert unsplit[len(store):] == unsplit[:len(store)]


def test_image_sizes_are_kept_once_each_and_indexed_by_row():
    import numpy as np

    from segdata.stored import shape_codes
    rng = np.random.default_rng(0)
    heights = rng.choice([480, 640, -1, 2**40], 70_000)  # more rows than one run, and odd values
    widths = rng.choice([640, 427, 0], 70_000)
    shapes, codes = shape_codes(heights, widths)
    assert codes.dtype == np.int8 and len(shapes) == 12
    assert (shapes[codes] == np.stack([heights, widths], axis=1)).all()
    empty_shapes, empty_codes = shape_codes(np.zeros(0, int), np.zeros(0, int))
    assert empty_shapes.shape == (0, 2) and len(empty_codes) == 0


def test_columns_gathered_source_by_source_take_one_value_or_one_per_row(tmp_path):
    files = []
    for image_id in (1, 2):
        path = tmp_path / f"{image_id}.json"
        records = [{"id": 0, "image_id": 0, "category_id": 0, "segmentation": [[0, 0, 3 + k, 0, 3, 2]]}
                   for k in range(2)]  # the columns give the ids
        path.write_bytes(orjson.dumps(records))
        files.append(str(path))
    columns = AnnotationColumns()
    columns.add(files[0], "train", [11, 12], image_id=1, category_id=[1, 2], height=3, width=6, face=0)
    columns.add(files[1], "val", range(21, 23), ["mask-empty", None], start=[1, 0], image_id=2, category_id=3,
                iscrowd=[True, False], height=3, width=6, face=[-1, 0], mask_ok=[False, True])
    columns.add(files[0], "train", [], image_id=1, category_id=1, height=3, width=6, face=0)  # adds nothing
    store = columns.store(coco._decode, _records_of)
    assert (store.files, store.splits, store.defects) == (tuple(files), ("train", "val"), ("mask-empty",))
    assert {name: values.tolist() for name, values in store.columns.items()} == {
        "file": [0, 0, 1, 1], "split": [0, 0, 1, 1], "start": [0, 1, 1, 0], "id": [11, 12, 21, 22],
        "image_id": [1, 1, 2, 2], "category_id": [1, 2, 3, 3], "iscrowd": [False, False, True, False],
        "shape": [0] * 4, "defect": [-1, -1, 0, -1], "mask_ok": [True, True, False, True],
        "face": [0, 0, -1, 0]}
    assert store.shapes.tolist() == [[3, 6]]
    assert [(a.id, a.image_id, a.category_id, a.defect, a.mask is None) for a in store] == [
        (11, 1, 1, None, False), (12, 1, 2, None, False), (21, 2, 3, "mask-empty", True),
        (22, 2, 3, None, False)]
    with pytest.raises(TypeError, match="face"):  # a column left out would fall out of step with the rest
        columns.add(files[1], "val", [31], image_id=2, category_id=1, height=3, width=6)
    empty = AnnotationColumns().store(coco._decode, _records_of)
    assert len(empty) == 0 and all(empty.columns[n].dtype == t for n, t in COLUMNS.items())


def test_images_kept_as_columns_are_the_records_a_whole_parse_gives(samples_dir, tmp_path, monkeypatch):
    from segdata import jsonstream
    from segdata.model import image_values
    from segdata.stored_images import StoredImages

    for source in sorted((samples_dir / "coco-dirty" / "annotations").glob("*.json")):
        document = orjson.loads(source.read_bytes())
        if source.stem.endswith("train"):  # a repeated id, and fields segdata passes through
            document["images"].append({**document["images"][0], "coco_url": "http://x/1.jpg", "license": 2})
        (tmp_path / source.name).write_bytes(orjson.dumps(document))
    stored = coco.read(tmp_path)
    assert isinstance(stored.images, StoredImages) and stored.splits == ["train", "val", "test"]

    def unscannable(*args):
        raise jsonstream.Unscannable("parse whole")

    monkeypatch.setattr(coco, "read_array_items", unscannable)
    whole = coco.read(tmp_path)
    assert isinstance(whole.images, list) and len(whole.images) == len(stored.images) > 30
    assert list(stored.images) == whole.images
    assert [repr(i) for i in stored.images] == [repr(i) for i in whole.images]
    assert [stored.images[n] for n in (0, -1, 17)] == [whole.images[n] for n in (0, -1, 17)]
    assert stored.images[5:9] == whole.images[5:9]
    assert any(i.defect for i in whole.images) and any(i.attributes for i in whole.images)
    assert pickle.loads(pickle.dumps(stored.images[3])) == whole.images[3]
    for name in ("id", "width", "height", "split"):
        assert image_values(stored.images, name).tolist() == image_values(whole.images, name).tolist()


def test_an_images_other_fields_read_from_its_span_behave_as_a_dict(tmp_path):
    from segdata.stored_images import SourceFields

    fields = {"license": 3, "coco_url": "http://images.cocodataset.org/val2017/000000000139.jpg",
              "score": 0.1 + 0.2, "tags": ["a", {"b": None}]}
    record = orjson.dumps({"id": 139, "file_name": "139.jpg", **fields})
    path = tmp_path / "images.json"
    path.write_bytes(b'{"images":[' + record + b"]}")
    kept = SourceFields(str(path), 11, 11 + len(record), frozenset({"id", "file_name"}))
    assert kept == fields and dict(kept) == fields and {**kept, "id": 1} == {**fields, "id": 1}
    assert kept["score"] == 0.1 + 0.2 and kept.get("missing") is None and repr(kept) == repr(fields)
    shipped = pickle.dumps(kept)
    assert b"coco_url" not in shipped and pickle.loads(shipped) == fields  # its span travels, not its fields
