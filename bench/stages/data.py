"""Stage ``data``: generate the stickman dataset (or take a COCO-format one from disk),
validate every split, draw the contact sheet, and write ``data/manifest.json`` (and the
stage's wall time in ``data/timing.json``).

``data/manifest.json`` (sizes and sha256 of the annotation files) is what the training stages
depend on, so a real dataset on disk, which DVC must not own, still invalidates runs when
its annotations change.
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from bench.data.layout import coco_metric_settings, data_layout, num_keypoints
from bench.params import STICKMAN_ROOT, Params, workdir
from bench.stages.common import fingerprint, write_json

MANIFEST = 'data/manifest.json'
# wall time of this stage, kept apart from the manifest so that regenerating identical data
# leaves the training stages up to date
TIMING = 'data/timing.json'
CONTACT_SHEET = 'reports/figures/dataset_samples.png'


def run(params: Params) -> dict:
    from bench.data.contact_sheet import draw_contact_sheet
    from bench.data.validate import check_metric_fields, validate_split_files

    start = time.perf_counter()
    layout = data_layout(params)
    work = workdir()
    root = Path(layout['root'])
    if params.data.source == 'stickman':
        from bench.data.stickman import StickmanConfig, generate
        knobs = params.data.stickman.model_dump()
        cfg = StickmanConfig(seed=params.data.seed, **{k: tuple(v) if isinstance(v, list) else v
                                                        for k, v in knobs.items()})
        # tqdm bars on a terminal only (in a pipe their carriage returns are noise)
        generate(work / STICKMAN_ROOT, cfg, workers=params.data.workers,
                 progress=sys.stderr.isatty())
    summary = validate_split_files(root, layout['ann_files'], layout['img_prefix'],
                                   num_keypoints(params.data.metainfo))
    use_area = coco_metric_settings(params)['use_area']
    for rel in dict.fromkeys(layout['ann_files'].values()):
        check_metric_fields(root / rel, use_area)
    draw_contact_sheet(root / layout['ann_files']['train'], root / layout['img_prefix'],
                       work / CONTACT_SHEET)
    # the generator's knobs change images without always changing annotations
    manifest = dict(source=params.data.source, root=str(root.relative_to(work)) if
                    root.is_relative_to(work) else str(root),
                    data_params=fingerprint(params.data.model_dump(mode='json')), splits={})
    for split, rel in layout['ann_files'].items():
        path = root / rel
        manifest['splits'][split] = dict(
            ann_file=rel, sha256=hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            **{k: v for k, v in summary[split].items() if isinstance(v, (int, float, str))})
    (work / STICKMAN_ROOT).mkdir(parents=True, exist_ok=True)  # a DVC output in every mode
    write_json(work / MANIFEST, manifest)
    write_json(work / TIMING, dict(stage='data', wall_s=round(time.perf_counter() - start, 1)))
    print(f'data: {params.data.source} at {manifest["root"]}: ' + ', '.join(
        f'{s} {m.get("annotations", "?")} instances' for s, m in manifest['splits'].items()))
    return manifest
