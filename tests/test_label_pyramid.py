"""`poolcli pyramid --labels`: NGFF image-label pyramids (stream/stores/labels.py), through the real
command line in subprocesses, read back with ome-zarr-py's Reader.

Every level holds only labels of the input and is the brute-force majority (the most frequent
label, the smallest on a tie) of level 0's 2^k x 2^k blocks; the labels sit beside the image as the
NGFF spec lays them out, or alone where the output is no image; refusals are one line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader


def poolcli(*arguments: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "poolcli", *map(str, arguments)], capture_output=True, text=True,
                          timeout=120)


def block_majority(labels: np.ndarray, k: int) -> np.ndarray:
    """The brute force: the most frequent value of each k x k block (the smallest on a tie)."""
    h, w = labels.shape[0] // k, labels.shape[1] // k
    out = np.empty((h, w), labels.dtype)
    for i in range(h):
        for j in range(w):
            values, counts = np.unique(labels[i * k:(i + 1) * k, j * k:(j + 1) * k], return_counts=True)
            out[i, j] = values[np.argmax(counts)]
    return out


def cell_labels(shape=(96, 80), seed: int = 0) -> np.ndarray:
    """Blobs of a few labels (large ids too) on a background of 0, with noise so that ties happen."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint32)
    for label in (1, 2, 7, 70000):
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        labels[max(0, y - 15):y + 15, max(0, x - 12):x + 12] = label
    noise = rng.random(shape) < 0.2
    labels[noise] = rng.choice([1, 2, 7, 70000, 3], noise.sum())
    return labels


def test_a_label_pyramid_beside_an_image_is_the_blockwise_majority_and_an_ngff_label(tmp_path):
    labels = cell_labels()
    np.save(tmp_path / "image.npy", np.random.default_rng(1).random(labels.shape).astype(np.float32))
    np.save(tmp_path / "cells.npy", labels)
    store = tmp_path / "image.zarr"
    assert poolcli("pyramid", tmp_path / "image.npy", "-o", store, "--levels", "3").returncode == 0
    image_files = sorted(p.relative_to(store) for p in store.rglob("*"))
    done = poolcli("pyramid", tmp_path / "cells.npy", "-o", store, "--labels", "cells", "--levels", "3",
                   "--memory", "16MB")
    assert done.returncode == 0, done.stderr
    assert not done.stderr
    assert sorted(p.relative_to(store) for p in store.rglob("*") if "labels" not in p.parts) == image_files
    group = zarr.open_group(str(store / "labels" / "cells"), mode="r")
    present = set(np.unique(labels).tolist())
    for k in range(4):
        level = group[str(k)][:]
        assert level.dtype == np.uint32 and set(np.unique(level).tolist()) <= present
        np.testing.assert_array_equal(level, block_majority(labels, 2 ** k) if k else labels)
    attrs = group.attrs.asdict()
    assert attrs["multiscales"][0]["type"] == "mode"
    assert attrs["image-label"]["version"] == "0.4" and attrs["image-label"]["source"] == {"image": "../../"}
    colours = attrs["image-label"]["colors"]
    assert [c["label-value"] for c in colours] == sorted(present) and colours[0]["rgba"] == [0, 0, 0, 0]
    assert json.loads((store / "labels" / ".zattrs").read_text()) == {"labels": ["cells"]}

    nodes = list(Reader(parse_url(str(store)))())
    kinds = {node.zarr.path.rstrip("/").rsplit("/", 1)[-1]: {type(spec).__name__ for spec in node.specs}
             for node in nodes}
    assert "Multiscales" in kinds["image.zarr"] and "Labels" in kinds["labels"] and "Label" in kinds["cells"]
    [label_node] = [node for node in nodes if any(type(spec).__name__ == "Label" for spec in node.specs)]
    np.testing.assert_array_equal(np.asarray(label_node.data[2]), block_majority(labels, 4))


def test_a_second_label_joins_the_list_and_an_existing_one_is_kept_without_overwrite(tmp_path):
    labels = cell_labels((32, 32))
    np.save(tmp_path / "image.npy", labels.astype(np.float32))
    np.save(tmp_path / "cells.npy", labels)
    np.save(tmp_path / "mask.npy", labels > 2)
    store = tmp_path / "image.zarr"
    assert poolcli("pyramid", tmp_path / "image.npy", "-o", store, "--levels", "2").returncode == 0
    assert poolcli("pyramid", tmp_path / "cells.npy", "-o", store, "--labels", "cells", "--levels", "2",
                   "-m", "nearest").returncode == 0
    np.testing.assert_array_equal(zarr.open_array(str(store / "labels" / "cells" / "2"), mode="r")[:],
                                  labels[::4, ::4])
    done = poolcli("pyramid", tmp_path / "mask.npy", "-o", store, "--labels", "mask", "--levels", "2")
    assert done.returncode == 0, done.stderr
    mask = zarr.open_array(str(store / "labels" / "mask" / "1"), mode="r")
    assert mask.dtype == np.uint8  # NGFF labels are integers
    np.testing.assert_array_equal(mask[:], block_majority((labels > 2).astype(np.uint8), 2))
    assert json.loads((store / "labels" / ".zattrs").read_text()) == {"labels": ["cells", "mask"]}
    before = (store / "labels" / "cells" / ".zattrs").read_text()
    done = poolcli("pyramid", tmp_path / "mask.npy", "-o", store, "--labels", "cells", "--levels", "2")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "exists" in done.stderr
    assert (store / "labels" / "cells" / ".zattrs").read_text() == before


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_majority_alone_writes_the_label_image_itself(tmp_path, zarr_format):
    labels = cell_labels((40, 24), seed=2)
    np.save(tmp_path / "cells.npy", labels)
    store = tmp_path / "cells.zarr"
    done = poolcli("pyramid", tmp_path / "cells.npy", "-o", store, "-m", "majority", "--levels", "2",
                   "--zarr-format", zarr_format)
    assert done.returncode == 0, done.stderr
    group = zarr.open_group(str(store), mode="r")
    attrs = group.attrs.asdict()
    label = attrs["image-label"] if zarr_format == 2 else attrs["ome"]["image-label"]
    assert label["version"] == {2: "0.4", 3: "0.5"}[zarr_format] and "source" not in label
    np.testing.assert_array_equal(group["2"][:], block_majority(labels, 4))
    if zarr_format == 2:
        [node] = list(Reader(parse_url(str(store)))())
        assert {type(spec).__name__ for spec in node.specs} >= {"Label", "Multiscales"}


@pytest.mark.parametrize("arguments, code, words", [
    (("--labels", "cells", "-m", "median"), 2, "--mode median can write a value that is no label"),
    (("--labels", "cells", "-m", "avg"), 2, "no label of the input"),
    (("--labels", "a/b"), 2, "--labels 'a/b' is not a plain name"),
    (("--labels", "cells", "--dtype", "float32"), 2, "labels are integers"),
])
def test_label_pyramids_refuse_what_would_invent_labels(tmp_path, arguments, code, words):
    np.save(tmp_path / "cells.npy", cell_labels((16, 16)))
    done = poolcli("pyramid", tmp_path / "cells.npy", "-o", tmp_path / "out.zarr", "--levels", "1", *arguments)
    assert done.returncode == code and done.stderr.startswith("poolcli: error: ") and words in done.stderr
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "out.zarr").exists()


def test_float_inputs_tiffs_and_labels_of_another_size_are_refused_and_leave_nothing(tmp_path):
    np.save(tmp_path / "float.npy", np.zeros((16, 16), np.float32))
    np.save(tmp_path / "cells.npy", cell_labels((16, 16)))
    np.save(tmp_path / "other.npy", cell_labels((16, 12)))
    done = poolcli("pyramid", tmp_path / "float.npy", "-o", tmp_path / "f.zarr", "--labels", "x", "--levels", "1")
    assert done.returncode == 1 and "holds float32 values; labels are integers" in done.stderr
    done = poolcli("pyramid", tmp_path / "cells.npy", "-o", tmp_path / "c.tif", "-m", "majority", "--levels", "1")
    assert done.returncode == 1 and "write .zarr" in done.stderr
    assert poolcli("pyramid", tmp_path / "float.npy", "-o", tmp_path / "image.zarr", "--levels", "1").returncode == 0
    done = poolcli("pyramid", tmp_path / "other.npy", "-o", tmp_path / "image.zarr", "--labels", "x", "--levels", "1")
    assert done.returncode == 1 and "do not fit the image" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "image.zarr" / "labels").exists()
    done = poolcli("pyramid", tmp_path / "float.npy", "-o", tmp_path / "f.zarr", "-m", "majority", "--levels", "1")
    assert done.returncode == 0, done.stderr  # majority alone, of floats: an image pyramid, no image-label
    assert "image-label" not in json.loads((tmp_path / "f.zarr" / ".zattrs").read_text())
    shutil.rmtree(tmp_path / "f.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.npy", "float.npy", "image.zarr", "other.npy"]
