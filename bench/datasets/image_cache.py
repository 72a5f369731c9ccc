"""Decode a split's images once into a memory-mapped uint8 array.

MMPose's ``LoadImage`` decodes every PNG again in every epoch (0.8 ms of the 2.3 ms that one
sample of the per-sample pipeline costs on this machine). The batched data path reads the
decoded pixels from one ``.npy`` file instead: built on first use, then memory-mapped by every
training of every method and seed, and shared for free by dataloader workers.

The file is keyed by the list of (path, size, mtime) of the images, so regenerated data gets a
new file and a stale one is never read. It is written to a temporary name and renamed, so a
killed build leaves nothing half-written behind. A CRC-32 of its bytes is written beside it
and checked on every open: a truncated, unreadable or altered cache is rebuilt, with one line
saying why. Images of different sizes are stored
top-left aligned in an array of the largest size (with their true sizes alongside): zero
padding changes nothing for a warp that treats everything outside the image as 0, as
``cv2.warpAffine``'s constant border does.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from bench.errors import RunError

#: Refuse to decode more than this (bytes) into the cache: a real dataset's train split can be
#: hundreds of GB decoded; it stays on MMPose's per-sample path (``train.data_path: mmpose``).
MAX_BYTES = 8 * 2**30


class DecodedImages:
    """Images of ``paths`` decoded as MMPose's ``LoadImage`` decodes them (``mmcv.imread``,
    BGR, uint8), held in a memory-mapped array.

    Attributes:
        pixels (np.ndarray): (N, H_max, W_max, 3) uint8, read-only memory map
        sizes (np.ndarray): (N, 2) int64 true (h, w) of each image
        index (dict): image path -> row of ``pixels``
    """

    def __init__(self, paths: Sequence[str], cache_dir: str | Path):
        paths = list(dict.fromkeys(str(p) for p in paths))
        self.index = {p: i for i, p in enumerate(paths)}
        cache_dir = Path(cache_dir)
        stats = []
        for p in paths:
            try:
                st = os.stat(p)
            except OSError as exc:
                raise RunError(f'image {p} is missing or unreadable ({exc.strerror})') from None
            stats.append((p, st.st_size, st.st_mtime_ns))
        key = hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:24]
        data_file = cache_dir / f'{key}.npy'
        size_file = cache_dir / f'{key}.sizes.npy'
        sum_file = cache_dir / f'{key}.crc32'
        files = (data_file, size_file, sum_file)
        if not all(f.is_file() for f in files):
            self._build(paths, cache_dir, data_file, size_file, sum_file)
        opened = self._open(data_file, size_file, sum_file, len(paths))
        if isinstance(opened, str):  # damaged: said in one line, rebuilt once
            print(f'image cache {data_file.name}: {opened}; rebuilding it', flush=True)
            self._build(paths, cache_dir, data_file, size_file, sum_file)
            opened = self._open(data_file, size_file, sum_file, len(paths))
            if isinstance(opened, str):
                raise RunError(f'image cache {data_file}: {opened} right after a rebuild')
        self.pixels, self.sizes = opened

    @staticmethod
    def _open(data_file: Path, size_file: Path, sum_file: Path, n: int):
        """(pixels, sizes), or a one-phrase reason why the files cannot be trusted: unreadable
        or truncated, the wrong number of images, or bytes that no longer match the checksum
        written with them."""
        try:
            pixels = np.load(data_file, mmap_mode='r')
            sizes = np.load(size_file)
            recorded = int(sum_file.read_text().strip())
        except (OSError, ValueError, EOFError) as exc:
            return f'unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})'
        if len(pixels) != n or sizes.shape != (n, 2):
            return f'holds {len(pixels)} images, expected {n}'
        if checksum(pixels) != recorded:
            return 'its bytes do not match the checksum written with it'
        return pixels, sizes

    @staticmethod
    def _build(paths, cache_dir: Path, data_file: Path, size_file: Path,
               sum_file: Path) -> None:
        import mmcv
        from tqdm import tqdm


        def read(p):
            img = mmcv.imread(p)  # what LoadImage does (cv2 backend, color, BGR)
            if img is None:
                raise RunError(f'image {p} could not be decoded')
            return img

        first = [read(p) for p in paths[:1]]
        # sizes from the headers would need another library; decode once for the sizes only
        # when the split mixes sizes (the generated data never does)
        sizes = np.zeros((len(paths), 2), dtype=np.int64)
        if first:
            sizes[:] = first[0].shape[:2]
        cache_dir.mkdir(parents=True, exist_ok=True)
        h, w = (int(x) for x in sizes.max(0)) if len(paths) else (1, 1)
        need = len(paths) * h * w * 3
        if need > MAX_BYTES:
            raise RunError(f'decoding {len(paths)} images of up to {w}x{h} needs '
                           f'{need / 2**30:.1f} GiB, above the cache limit of '
                           f'{MAX_BYTES / 2**30:.0f} GiB: set train.data_path: mmpose')
        tmp = data_file.with_name(data_file.name + f'.{os.getpid()}.tmp')
        arr = np.lib.format.open_memmap(tmp, mode='w+', dtype=np.uint8, shape=(len(paths), h, w, 3))
        mixed = False
        # a bar on a terminal only: in a pipe or a log, tqdm's carriage returns are noise
        for i, p in enumerate(tqdm(paths, desc='decoding images (once)', unit='img',
                                   disable=not sys.stderr.isatty(),
                                   mininterval=2.0, leave=False)):
            img = first[0] if i == 0 else read(p)
            if img.shape[0] > h or img.shape[1] > w:
                mixed = True
                break
            sizes[i] = img.shape[:2]
            arr[i, :img.shape[0], :img.shape[1]] = img
        del arr
        if mixed:  # sizes differ: a second pass with the largest size
            tmp.unlink()
            imgs_shape = np.array([read(p).shape[:2] for p in paths])
            h, w = (int(x) for x in imgs_shape.max(0))
            if len(paths) * h * w * 3 > MAX_BYTES:
                raise RunError(f'decoding {len(paths)} images of up to {w}x{h} is above the '
                               f'cache limit of {MAX_BYTES / 2**30:.0f} GiB: set '
                               f'train.data_path: mmpose')
            arr = np.lib.format.open_memmap(tmp, mode='w+', dtype=np.uint8,
                                            shape=(len(paths), h, w, 3))
            for i, p in enumerate(paths):
                img = read(p)
                sizes[i] = img.shape[:2]
                arr[i, :img.shape[0], :img.shape[1]] = img
            del arr
        stmp = size_file.with_name(size_file.name + f'.{os.getpid()}.tmp.npy')
        np.save(stmp, sizes)
        ctmp = sum_file.with_name(sum_file.name + f'.{os.getpid()}.tmp')
        ctmp.write_text(f'{checksum(np.load(tmp, mmap_mode="r"))}\n')
        stmp.replace(size_file)
        ctmp.replace(sum_file)
        tmp.replace(data_file)


def checksum(pixels: np.ndarray, chunk: int = 64 * 2**20) -> int:
    """CRC-32 of an array's bytes, read in chunks from its memory map (about 1 GB/s: 0.1 s
    for the default study's training images)."""
    flat = pixels.reshape(-1)
    crc = 0
    for start in range(0, flat.size, chunk):
        crc = zlib.crc32(memoryview(np.ascontiguousarray(flat[start:start + chunk])), crc)
    return crc
