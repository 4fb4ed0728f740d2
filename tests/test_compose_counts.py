"""segdata/compose_counts.py: the counts of the composed maps, without painting them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hyp_settings, strategies as st

from segdata.compose import compose_image, settings
from segdata.compose_counts import count_image
from tests.test_compose import POLICIES, scenes


@hyp_settings(max_examples=400, deadline=None)
@given(scene=scenes(), overlap=st.sampled_from(POLICIES), crowd=st.sampled_from(["void", "paint", "skip"]))
def test_counts_equal_what_the_painter_paints(scene, overlap, crowd):
    image, anns = scene
    config = settings([1, 2, 3], overlap=overlap, crowd=crowd)
    maps = compose_image(image, anns, config)
    counts = count_image(image, anns, config)
    np.testing.assert_array_equal(counts.visible, maps.visible_areas())
    np.testing.assert_array_equal(counts.source_areas, maps.source_areas)
    assert counts.void_px == maps.report.void_px == int((maps.class_map == 255).sum())
    assert counts.skipped_annotation_ids == maps.report.skipped_annotation_ids


def test_counts_on_the_sample_equal_the_painter(samples_dir):
    from segdata import converters

    dataset = converters.read(samples_dir / "coco-dirty")
    for overlap in (p for p in POLICIES if p != "score"):  # the sample has no scores
        config = settings(list(dataset.categories), overlap=overlap, on_invalid="skip")
        for image, anns in dataset.iter_images():
            if image.defect:
                continue
            maps, counts = compose_image(image, anns, config), count_image(image, anns, config)
            np.testing.assert_array_equal(counts.visible, maps.visible_areas())
            assert counts.void_px == maps.report.void_px
