"""Fail-fast validation of COCO keypoint annotation files, before any training starts.

Every problem is raised as a :class:`DatasetError` whose message is ONE line naming the
annotation file, the offending record (``annotations[12] (id=345)``, ``images[3] (id=7)``,
or the JSON line/column) and what is wrong, so that a DVC stage log shows it whole.

The checks are linear in the number of records and vectorised with numpy where the data is
big (COCO train has ~150k images and ~250k person annotations): per-record Python work is
limited to collecting fields; the numeric checks run on stacked arrays, and the slow path
that pinpoints a bad record only runs once a check has failed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bench.errors import DatasetError  # noqa: F401  (raised here; also imported from here)

_REQUIRED_TOP = ('images', 'annotations', 'categories')
_ANN_KEYS = ('id', 'image_id', 'keypoints', 'bbox')


def _one_line(text: str) -> str:
    return ' '.join(str(text).split())


def _fail(path: Path, what: str) -> None:
    raise DatasetError(_one_line(f'{path}: {what}'))


def _short(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _load(path: Path):
    try:
        raw = path.read_bytes()
    except OSError as e:
        _fail(path, f'cannot read annotation file ({e.strerror or type(e).__name__})')
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        _fail(path, f'invalid JSON at line {e.lineno} column {e.colno}: {e.msg}')
    except UnicodeDecodeError as e:
        _fail(path, f'annotation file is not UTF-8 text (byte {e.start})')


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _numeric_rows(path: Path, rows: list, width: int, field: str, label) -> np.ndarray:
    """Stack ``rows`` (lists of ``width`` numbers) into (N, width) float64, or name the bad one."""
    lens = np.fromiter((len(r) if isinstance(r, list) else -1 for r in rows), dtype=np.int64,
                       count=len(rows))
    bad = np.flatnonzero(lens != width)
    if bad.size:
        i = int(bad[0])
        got = f'{lens[i]} values' if lens[i] >= 0 else f'a {type(rows[i]).__name__}'
        _fail(path, f'{label(i)}: {field!r} has {got}, expected a list of {width} numbers')
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), width)
    except (TypeError, ValueError):
        pass
    for i, r in enumerate(rows):  # slow path, only to name the record
        for j, v in enumerate(r):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                _fail(path, f'{label(i)}: {field!r}[{j}] is {_short(v)}, not a number')
    _fail(path, f'{field!r} values are not numbers')  # unreachable in practice


def validate_coco_keypoints(ann_file: Path, image_root: Path, num_keypoints: int = 17,
                            check_images: bool = True, decode_check: int = 3) -> dict:
    """Check one COCO keypoint annotation file (and its images) for what MMPose needs.

    Args:
        ann_file (Path): The annotation JSON.
        image_root (Path): Folder that ``images[*].file_name`` is relative to (MMPose's
            ``data_root / data_prefix['img']``).
        num_keypoints (int): Keypoints per instance; ``keypoints`` must have 3x as many
            values. Default: 17.
        check_images (bool): Check that every image file exists and is not empty, and that
            the first ``decode_check`` decode with OpenCV. Default: True.
        decode_check (int): How many images to decode. Default: 3.

    Returns:
        dict: ``{'images': int, 'annotations': int, 'keypoints_labelled': int}`` where the
        last counts keypoints with visibility > 0.

    Raises:
        DatasetError: On the first problem found, with a one-line message.
    """
    path = Path(ann_file)
    data = _load(path)
    if not isinstance(data, dict):
        _fail(path, f'top level is a JSON {type(data).__name__}, expected an object with '
                    f'keys {list(_REQUIRED_TOP)}')
    missing = [k for k in _REQUIRED_TOP if k not in data]
    if missing:
        _fail(path, f'missing top-level key(s) {missing} (has {sorted(data)[:8]})')
    for key in _REQUIRED_TOP:
        if not isinstance(data[key], list):
            _fail(path, f'top-level {key!r} is a {type(data[key]).__name__}, expected a list')
    images, anns = data['images'], data['annotations']
    if not images:
        _fail(path, "no images: 'images' is empty (empty split?)")
    if not anns:
        _fail(path, "no annotations: 'annotations' is empty (empty split?)")

    # images
    def img_label(i: int) -> str:
        rec = images[i]
        return f'images[{i}] (id={rec.get("id")!r})' if isinstance(rec, dict) else f'images[{i}]'

    for i, rec in enumerate(images):
        if not isinstance(rec, dict):
            _fail(path, f'images[{i}] is a {type(rec).__name__}, expected an object')
        if not _is_int(rec.get('id')):
            _fail(path, f'{img_label(i)}: missing or non-integer "id"')
        if not isinstance(rec.get('file_name'), str) or not rec['file_name']:
            _fail(path, f'{img_label(i)}: missing or empty "file_name"')
        for dim in ('width', 'height'):  # MMPose clips boxes with them
            if not (_is_int(rec.get(dim)) and rec[dim] > 0):
                _fail(path, f'{img_label(i)}: {dim}={_short(rec.get(dim))} is not a positive '
                            f'integer')
    img_ids = np.array([rec['id'] for rec in images], dtype=np.int64)
    uniq, counts = np.unique(img_ids, return_counts=True)
    if (counts > 1).any():
        dup = int(uniq[np.argmax(counts > 1)])
        i = int(np.flatnonzero(img_ids == dup)[1])
        _fail(path, f'images[{i}]: image id={dup} appears more than once')

    # annotations
    def ann_label(i: int) -> str:
        rec = anns[i]
        return (f'annotations[{i}] (id={rec.get("id")!r})' if isinstance(rec, dict)
                else f'annotations[{i}]')

    for i, rec in enumerate(anns):
        if not isinstance(rec, dict):
            _fail(path, f'annotations[{i}] is a {type(rec).__name__}, expected an object')
        for key in _ANN_KEYS:
            if key not in rec:
                _fail(path, f'{ann_label(i)}: missing key {key!r}')
        if not _is_int(rec['id']) or not _is_int(rec['image_id']):
            _fail(path, f'{ann_label(i)}: "id" and "image_id" must be integers')
    ann_ids = np.array([rec['id'] for rec in anns], dtype=np.int64)
    uniq, counts = np.unique(ann_ids, return_counts=True)
    if (counts > 1).any():
        dup = int(uniq[np.argmax(counts > 1)])
        i = int(np.flatnonzero(ann_ids == dup)[1])
        _fail(path, f'{ann_label(i)}: annotation id={dup} appears more than once')
    ann_img = np.array([rec['image_id'] for rec in anns], dtype=np.int64)
    unknown = np.flatnonzero(~np.isin(ann_img, img_ids))
    if unknown.size:
        i = int(unknown[0])
        _fail(path, f'{ann_label(i)}: image_id={ann_img[i]} is not in "images"')

    k = int(num_keypoints)
    kpts = _numeric_rows(path, [rec['keypoints'] for rec in anns], 3 * k, 'keypoints',
                         ann_label).reshape(-1, k, 3)
    nonfinite = ~np.isfinite(kpts)
    if nonfinite.any():
        i, j, c = (int(v) for v in np.argwhere(nonfinite)[0])
        _fail(path, f'{ann_label(i)}: keypoint {j} has {"xyv"[c]}={kpts[i, j, c]} '
                    f'(NaN or inf)')
    negative = kpts[..., :2] < 0
    if negative.any():
        i, j, c = (int(v) for v in np.argwhere(negative)[0])
        _fail(path, f'{ann_label(i)}: keypoint {j} has negative {"xy"[c]}={kpts[i, j, c]:g}')
    vis = kpts[..., 2]
    bad_vis = ~np.isin(vis, (0.0, 1.0, 2.0))
    if bad_vis.any():
        i, j = (int(v) for v in np.argwhere(bad_vis)[0])
        _fail(path, f'{ann_label(i)}: keypoint {j} has visibility v={vis[i, j]:g}, '
                    f'expected 0, 1 or 2')

    boxes = _numeric_rows(path, [rec['bbox'] for rec in anns], 4, 'bbox', ann_label)
    crowd = np.array([bool(rec.get('iscrowd', 0)) for rec in anns])
    bad_box = ~np.isfinite(boxes).all(1) | (~crowd & ((boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)))
    if bad_box.any():
        i = int(np.argmax(bad_box))
        _fail(path, f'{ann_label(i)}: bbox {boxes[i].tolist()} is not [x, y, w, h] with finite '
                    f'values and w > 0, h > 0')

    if check_images:
        _check_image_files(path, Path(image_root), images, img_label, decode_check)
    return dict(images=len(images), annotations=len(anns),
                keypoints_labelled=int((vis > 0).sum()))


def check_metric_fields(ann_file: Path, use_area: bool) -> None:
    """Check that ``CocoMetric`` can score against this annotation file with these settings,
    before any training: with ``use_area`` every annotation needs an ``area`` (CrowdPose's
    release has none; MMPose evaluates it with ``use_area=False``).

    Raises:
        DatasetError: one line naming the file, the first annotation without the field, and
            the setting that needs it.
    """
    path = Path(ann_file)
    if not use_area:
        return
    for i, rec in enumerate(_load(path).get('annotations', [])):
        if 'area' not in rec:
            _fail(path, f'annotations[{i}] (id={rec.get("id")!r}) has no "area" field, which '
                        f'CocoMetric needs with use_area: true; set data.coco.use_area: false '
                        f'(as MMPose does for CrowdPose) or add the field')


def _check_image_files(path: Path, root: Path, images: list, label, decode_check: int) -> None:
    for i, rec in enumerate(images):
        img = root / rec['file_name']
        try:
            size = os.stat(img).st_size
        except OSError:
            _fail(path, f'{label(i)}: image file {img} does not exist')
        if size == 0:
            _fail(path, f'{label(i)}: image file {img} is empty (0 bytes)')
    if decode_check <= 0:
        return
    import cv2  # only here: the cheap checks above need no OpenCV

    for i, rec in enumerate(images[:decode_check]):
        img = root / rec['file_name']
        if cv2.imread(str(img), cv2.IMREAD_UNCHANGED) is None:
            _fail(path, f'{label(i)}: image file {img} cannot be decoded')


def validate_split_files(root: Path, ann_files: dict[str, str], img_prefix: str,
                         num_keypoints: int = 17, check_images: bool = True) -> dict[str, dict]:
    """Run :func:`validate_coco_keypoints` for several splits of one dataset.

    Args:
        root (Path): The dataset root (MMPose ``data_root``).
        ann_files (dict[str, str]): ``{split: annotation file relative to root}``.
        img_prefix (str): Image folder relative to root (MMPose ``data_prefix['img']``).
        num_keypoints (int): Keypoints per instance. Default: 17.
        check_images (bool): See :func:`validate_coco_keypoints`. Default: True.

    Returns:
        dict[str, dict]: ``{split: summary}``.
    """
    root = Path(root)
    return {split: validate_coco_keypoints(root / rel, root / img_prefix, num_keypoints,
                                           check_images)
            for split, rel in ann_files.items()}
