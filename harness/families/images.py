"""Reading the user's image files, shared by the families that take image folders (classification, dense,
restoration): which files count as images, and opening one with a clear error instead of a raw PIL one.

The extensions are torchvision's ``IMG_EXTENSIONS`` (what ``ImageFolder`` accepts), matched without case.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS

from harness.errors import DataError

EXTENSIONS_TEXT = ", ".join(IMG_EXTENSIONS)


def is_image(path: Path | str) -> bool:
    return str(path).lower().endswith(IMG_EXTENSIONS)


def iter_images(folder: Path) -> Iterator[Path]:
    """Image files directly in ``folder``, in directory order (cheap: stops when the caller stops)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file() and is_image(entry.name):
                yield Path(entry.path)


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(iter_images(folder))


def open_image(path: Path, field: tuple[str, ...] = ("path",), mode: str | None = "RGB") -> Image.Image:
    """The decoded image (converted to ``mode`` unless None); a missing or unreadable file is a ``DataError``
    naming it."""
    try:
        with Image.open(path) as image:
            return image.convert(mode) if mode else image.copy()
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found", field) from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read this image ({exc}); replace the file or remove it", field) from None


def image_size(path: Path, field: tuple[str, ...] = ("path",)) -> tuple[int, int]:
    """``(width, height)`` from the file's header alone (nothing decoded)."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found", field) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read this image ({exc}); replace the file or remove it", field) from None
