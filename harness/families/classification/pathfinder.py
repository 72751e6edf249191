"""A procedural Pathfinder generator: LRA's long-range image task, rendered at any resolution.

Pathfinder (Linsley et al., NeurIPS 2018; Long Range Arena, Tay et al., arXiv 2011.04006) shows two dots
and several curvy dashed paths; the label says whether the dots are joined by one path. Deciding needs
tracing a contour across the image, so it is the long-range counterpart of digit recognition. LRA ships
fixed image sets at 32/64/128/256 px; here they are generated (no download), deterministic per
(seed, index), at any ``resolution``. Both classes have the same number of paths and dots: in a positive
sample the dots sit at the two ends of one path, in a negative one at the ends of two different paths,
so counting strokes or dots cannot solve it.

Written by hand because no installed library generates Pathfinder; drawing uses scikit-image.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.draw import disk, line_aa


def _random_path(rng: np.random.Generator, size: int, n_segments: int, seg_len: float, curvature: float) -> np.ndarray:
    """Points ``(n_segments + 1, 2)`` of a smooth random walk that turns back at the image border."""
    margin = 2.0
    lo, hi = margin, size - 1 - margin
    point = rng.uniform(lo, hi, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    points = [point]
    for _ in range(n_segments):
        angle += rng.normal(0.0, curvature)
        step = seg_len * np.array([np.sin(angle), np.cos(angle)])
        nxt = point + step
        for axis in range(2):  # reflect off the border
            if not lo <= nxt[axis] <= hi:
                step[axis] = -step[axis]
        angle = float(np.arctan2(step[0], step[1]))
        point = np.clip(point + step, lo, hi)
        points.append(point)
    return np.stack(points)


def render_pathfinder(
    rng: np.random.Generator,
    resolution: int,
    path_segments: int,
    n_distractors: int,
    segment_length: float,
    curvature: float,
) -> tuple[torch.Tensor, int]:
    """One sample: a ``(1, R, R)`` float image in [0, 1] and its label (1 = the dots are connected)."""
    size = resolution
    seg_len = max(2.0, segment_length * size)
    n_segments = path_segments | 1  # odd, so both ends of a dashed path are drawn dashes
    paths = [_random_path(rng, size, n_segments, seg_len, curvature) for _ in range(2 + n_distractors)]
    label = int(rng.integers(2))
    canvas = np.zeros((size, size), dtype=np.float32)
    for path in paths:
        for k in range(0, n_segments, 2):  # dashes: every other segment
            r0, c0 = np.round(path[k]).astype(int)
            r1, c1 = np.round(path[k + 1]).astype(int)
            rr, cc, val = line_aa(r0, c0, r1, c1)
            keep = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
            np.maximum.at(canvas, (rr[keep], cc[keep]), val[keep].astype(np.float32))
    radius = max(1.0, size / 32)
    ends = (paths[0][0], paths[0][-1] if label else paths[1][-1])
    for end in ends:
        canvas[disk(tuple(end), radius, shape=canvas.shape)] = 1.0
    return torch.from_numpy(canvas)[None], label
