"""Progress bars for long work (tqdm) on stderr, the stream of cglight's messages (Lightning's bars too:
:mod:`cglight.training.progress_bar`); ``CGLIGHT_PROGRESS=0`` turns every bar off."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], **kwargs) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr; ``CGLIGHT_PROGRESS=0`` turns bars off."""
    disable = os.environ.get("CGLIGHT_PROGRESS", "1") == "0"
    return tqdm(iterable, file=sys.stderr, disable=disable, dynamic_ncols=True, mininterval=0.5, **kwargs)
