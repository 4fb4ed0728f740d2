"""segdata: convert, compose, validate, count and evaluate image-segmentation datasets."""

from importlib.metadata import PackageNotFoundError, version

from segdata.errors import FormatError, MaskError, OutputExistsError, ReadError, SegdataError, UsageError
from segdata.masks import Mask, bitmap_to_polygons
from segdata.model import Annotation, Category, ConversionReport, Dataset, Finding, ImageRecord

try:
    __version__ = version("segdata")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Annotation", "Category", "ConversionReport", "Dataset", "Finding", "FormatError", "ImageRecord",
    "Mask", "MaskError", "OutputExistsError", "ReadError", "SegdataError", "UsageError",
    "__version__", "bitmap_to_polygons",
]
