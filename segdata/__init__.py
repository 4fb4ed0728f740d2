"""segdata: convert, compose, validate, count and evaluate image-segmentation datasets."""

from segdata.errors import FormatError, MaskError, OutputExistsError, ReadError, SegdataError, UsageError
from segdata.masks import Mask, bitmap_to_polygons
from segdata.model import Annotation, Category, ConversionReport, Dataset, Finding, ImageRecord


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata when first asked for.

    ``importlib.metadata`` would otherwise cost every command ~40 ms at start.
    """
    if name != "__version__":
        raise AttributeError(f"module 'segdata' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("segdata")
    except PackageNotFoundError:  # running from a source tree that is not installed
        value = "0+unknown"
    globals()["__version__"] = value
    return value


__all__ = [
    "Annotation", "Category", "ConversionReport", "Dataset", "Finding", "FormatError", "ImageRecord",
    "Mask", "MaskError", "OutputExistsError", "ReadError", "SegdataError", "UsageError",
    "__version__", "bitmap_to_polygons",
]
