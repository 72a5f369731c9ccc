"""Contact sheets: a grid of dataset images with their ground truth drawn, to eyeball a dataset.

Joints: filled for ``v=2``, hollow for ``v=1`` (labelled but hidden), not drawn for ``v=0``;
limbs are drawn when both ends are labelled, in MMPose's COCO colours (green: the figure's
left, orange: its right, blue: the middle); the bbox is a white dashed rectangle.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

_LEFT, _RIGHT, _MID = (0.0, 1.0, 0.0), (1.0, 0.5, 0.0), (0.2, 0.6, 1.0)


def _side_colour(names: list[str], *idx: int) -> tuple:
    sides = {('left' if 'left' in names[i] else 'right' if 'right' in names[i] else 'mid')
             for i in idx}
    return _LEFT if sides == {'left'} else _RIGHT if sides == {'right'} else _MID


def draw_contact_sheet(ann_file: Path, image_root: Path, out_png: Path, n: int = 24,
                       cols: int = 6, seed: int = 0, skeleton=None) -> Path:
    """Draw ``n`` random images of a COCO keypoint file with their annotations.

    Args:
        ann_file (Path): COCO keypoint annotation JSON.
        image_root (Path): Folder that ``file_name`` is relative to.
        out_png (Path): Output PNG; its parent folder is created.
        n (int): Number of images (all of them if the file has fewer). Default: 24.
        cols (int): Grid columns. Default: 6.
        seed (int): Seed of the image sample. Default: 0.
        skeleton (Sequence[tuple[int, int]], optional): 0-based keypoint links. Default: the
            category's 1-based ``skeleton`` from the file, else the COCO skeleton.

    Returns:
        Path: ``out_png``.
    """
    import cv2
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from .stickman import COCO_SKELETON, KEYPOINT_NAMES

    data = json.loads(Path(ann_file).read_text())
    cats = data.get('categories') or [{}]
    names = list(cats[0].get('keypoints') or KEYPOINT_NAMES)
    if skeleton is None:
        file_skel = cats[0].get('skeleton')
        skeleton = [(a - 1, b - 1) for a, b in file_skel] if file_skel else COCO_SKELETON
    anns = defaultdict(list)
    for ann in data['annotations']:
        anns[ann['image_id']].append(ann)
    images = data['images']
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(images), size=min(n, len(images)), replace=False))
    cols = max(1, min(cols, len(pick)))
    rows = max(1, math.ceil(len(pick) / cols))

    # Figure + Agg canvas directly: no pyplot global state, no backend switch for the caller
    fig = Figure(figsize=(2.2 * cols, 2.4 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for slot, i in enumerate(pick):
        rec = images[int(i)]
        ax = fig.add_subplot(rows, cols, slot + 1)
        ax.set_axis_off()
        img = cv2.imread(str(Path(image_root) / rec['file_name']), cv2.IMREAD_COLOR)
        if img is None:
            ax.set_title(f'{rec["file_name"]}: unreadable', fontsize=6, color='red')
            continue
        ax.imshow(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), interpolation='nearest')
        for ann in anns.get(rec['id'], []):
            kp = np.asarray(ann['keypoints'], dtype=float).reshape(-1, 3)
            for a, b in skeleton:
                if max(a, b) < len(kp) and kp[a, 2] > 0 and kp[b, 2] > 0:
                    ax.plot(kp[[a, b], 0], kp[[a, b], 1], '-', lw=1.2,
                            color=_side_colour(names, a, b), alpha=0.9)
            for j, (x, y, v) in enumerate(kp):
                if v > 0:
                    c = _side_colour(names, j)
                    ax.plot(x, y, 'o', ms=3, mew=0.8, mec=c, mfc=c if v == 2 else 'none')
            x, y, w, h = ann['bbox']
            ax.add_patch(Rectangle((x, y), w, h, fill=False, lw=0.8, ls='--',
                                   ec='white'))
            ax.set_title(f'{rec["file_name"]} ({ann.get("num_keypoints", "?")} kpts)',
                         fontsize=6)
    fig.tight_layout(pad=0.3, h_pad=0.9)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    return out_png
