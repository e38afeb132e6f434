"""OME-Zarr outputs that the next tool reads right (issue #24, the Zarr side): valid NGFF 0.4 and
0.5 for the ome-zarr-models validator, nested chunk keys, dimension names, each level's scale and
half-pixel translation, omero channels, calibration carried from an OME-Zarr input or set with
--pixel-size and --unit, axes named with --layout and pooled per -k, `info` listing the levels,
and ome-zarr-py's Reader reading it all back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v04.image import Image as ImageV04
from ome_zarr_models.v05.image import Image as ImageV05

from poolcli import pool
from poolcli.cli import main


def _multiscale(group) -> dict:
    attributes = group.attrs.asdict()
    return attributes["multiscales"][0] if "multiscales" in attributes else attributes["ome"]["multiscales"][0]


def _omero(group) -> dict:
    attributes = group.attrs.asdict()
    return attributes["omero"] if "omero" in attributes else attributes["ome"]["omero"]


def _ome_input(path: Path, x: np.ndarray, axes: list[dict], scale: list[float], translation: list[float],
               zarr_format: int = 2) -> Path:
    """An OME-Zarr image of one level written with zarr alone, its metadata as NGFF 0.4 or 0.5 puts it."""
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    keywords = {"chunk_key_encoding": {"name": "v2", "separator": "/"}} if zarr_format == 2 else \
        {"dimension_names": [a["name"] for a in axes]}
    group.create_array("0", shape=x.shape, chunks=x.shape, dtype=x.dtype, **keywords)[:] = x
    multiscale = {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": scale}, {"type": "translation", "translation": translation}]}]}
    if zarr_format == 2:
        group.attrs.update({"multiscales": [{"version": "0.4", **multiscale}]})
    else:
        group.attrs.update({"ome": {"version": "0.5", "multiscales": [multiscale]}})
    return path


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "poolcli", *argv], capture_output=True, text=True, timeout=60)


UM = {"type": "space", "unit": "micrometer"}


def test_ngff_04_is_valid_with_nested_chunk_keys_also_when_level_0_is_copied(tmp_path):
    """NGFF 0.4 wants "/" chunk keys: every level, level 0 copied from a "."-keyed Zarr input too."""
    x = np.random.default_rng(0).integers(0, 256, (2, 64, 48), dtype=np.uint8)
    dotted = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=x.shape, chunks=(1, 32, 32), dtype=x.dtype,
                               zarr_format=2)
    dotted[:] = x
    assert (tmp_path / "in.zarr" / "1.1.0").is_file()  # the input's keys are dotted
    target = tmp_path / "out.zarr"
    assert main(["pyramid", str(tmp_path / "in.zarr"), "-o", str(target), "--levels", "2"]) == 0
    group = zarr.open_group(str(target), mode="r")
    ImageV04.from_zarr(group)  # raises on invalid metadata
    for k in range(3):
        assert json.loads((target / str(k) / ".zarray").read_text())["dimension_separator"] == "/"
    assert (target / "0" / "1" / "1" / "0").is_file() and (target / "1" / "1" / "0" / "0").is_file()
    assert not any(p.name.count(".") == 2 for p in target.rglob("*") if p.is_file())
    np.testing.assert_array_equal(group["0"][:], x)  # zarr reads the nested keys back
    np.testing.assert_array_equal(group["2"][:], pool(x, 4, axes=(1, 2), mode="avg", dtype=np.uint8))


@pytest.mark.parametrize("copied", [False, True])
def test_ngff_05_is_valid_with_dimension_names_on_every_level(tmp_path, copied):
    x = np.random.default_rng(1).integers(0, 60000, (3, 40, 64), dtype=np.uint16)
    if copied:  # a Zarr v3 input: level 0 is its chunk files, its metadata given the dimension names
        source = tmp_path / "in.zarr"
        zarr.create_array(store=str(source), shape=x.shape, chunks=(1, 16, 16), dtype=x.dtype, zarr_format=3)[:] = x
    else:
        source = tmp_path / "in.npy"
        np.save(source, x)
    target = tmp_path / "out.zarr"
    assert main(["pyramid", str(source), "-o", str(target), "--levels", "2", "--zarr-format", "3"]) == 0
    group = zarr.open_group(str(target), mode="r", zarr_format=3)
    ImageV05.from_zarr(group)
    names = [axis["name"] for axis in _multiscale(group)["axes"]]
    assert names == ["c", "y", "x"] and group.attrs["ome"]["version"] == "0.5"
    for k in range(3):
        assert json.loads((target / str(k) / "zarr.json").read_text())["dimension_names"] == names
    np.testing.assert_array_equal(group["0"][:], x)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_calibration_of_an_ome_zarr_input_is_carried_exactly_with_half_pixel_translations(tmp_path, zarr_format):
    """Level k: scale = input scale x 2^k, translation = input translation + input scale x (2^k - 1) / 2,
    equal as floats; axes, units and channels kept."""
    x = np.random.default_rng(2).integers(0, 256, (2, 64, 64), dtype=np.uint8)
    axes = [{"name": "c", "type": "channel"}, {"name": "y", **UM}, {"name": "x", **UM}]
    scale, translation = [1.0, 0.3, 0.7], [0.0, 5.1, -2.5]
    source = _ome_input(tmp_path / "in.ome.zarr", x, axes, scale, translation, zarr_format)
    target = tmp_path / "out.ome.zarr"
    assert main(["pyramid", str(source), "-o", str(target), "--levels", "3",
                 "--zarr-format", str(zarr_format)]) == 0
    group = zarr.open_group(str(target), mode="r")
    (ImageV04 if zarr_format == 2 else ImageV05).from_zarr(group)
    meta = _multiscale(group)
    assert meta["axes"] == axes
    for k, dataset in enumerate(meta["datasets"]):
        factor = [1, 2 ** k, 2 ** k]
        moved = [t + s * (f - 1) / 2 for t, s, f in zip(translation, scale, factor)]
        assert dataset["coordinateTransformations"] == [
            {"type": "scale", "scale": [s * f for s, f in zip(scale, factor)]},
            {"type": "translation", "translation": moved}]
    assert meta["datasets"][3]["coordinateTransformations"][0]["scale"] == [1.0, 0.3 * 8, 0.7 * 8]

    pooled = tmp_path / "pooled.ome.zarr"  # pool's OME-Zarr output: one level, 3x3 windows of stride 2
    assert main(["pool", str(source), "-o", str(pooled), "-m", "avg", "-k", "3", "-s", "2",
                 "--zarr-format", str(zarr_format)]) == 0
    group = zarr.open_group(str(pooled), mode="r")
    (ImageV04 if zarr_format == 2 else ImageV05).from_zarr(group)
    (dataset,) = _multiscale(group)["datasets"]
    assert dataset["coordinateTransformations"] == [
        {"type": "scale", "scale": [1.0, 0.6, 1.4]},
        {"type": "translation", "translation": [0.0, 5.1 + 0.3, -2.5 + 0.7]}]  # the first window's centre: pixel 1
    np.testing.assert_array_equal(group["0"][:], pool(x, 3, 2, axes=(1, 2), mode="avg"))


def test_omero_names_and_colours_an_rgb_image_and_windows_wide_data(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "photo.tif", rgb, photometric="rgb", tile=(16, 16))
    assert main(["pyramid", str(tmp_path / "photo.tif"), "-o", str(tmp_path / "rgb.zarr"), "--levels", "2"]) == 0
    channels = _omero(zarr.open_group(str(tmp_path / "rgb.zarr"), mode="r"))["channels"]
    assert [(c["label"], c["color"]) for c in channels] == [("red", "FF0000"), ("green", "00FF00"),
                                                           ("blue", "0000FF")]
    assert all(c["window"] == {"min": 0.0, "max": 255.0, "start": 0.0, "end": 255.0} for c in channels)

    wide = np.random.default_rng(4).integers(1000, 3000, (2, 64, 64), dtype=np.uint16)
    wide[1] += 10000
    np.save(tmp_path / "wide.npy", wide)
    assert main(["pyramid", str(tmp_path / "wide.npy"), "-o", str(tmp_path / "wide.zarr"), "--levels", "2",
                 "--zarr-format", "3"]) == 0
    channels = _omero(zarr.open_group(str(tmp_path / "wide.zarr"), mode="r"))["channels"]
    smallest = pool(wide, 4, axes=(1, 2), mode="avg", dtype=np.uint16)
    for c, channel in enumerate(channels):  # grey; min/max the dtype's, start/end the smallest level's range
        assert channel["color"] == "FFFFFF"
        assert channel["window"] == {"min": 0.0, "max": 65535.0, "start": float(smallest[c].min()),
                                     "end": float(smallest[c].max())}


def test_pixel_size_and_unit_set_the_calibration_of_pyramid_and_pool_outputs(tmp_path):
    x = np.random.default_rng(5).integers(0, 256, (64, 64), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    target = tmp_path / "p.zarr"
    assert main(["pyramid", str(tmp_path / "x.npy"), "-o", str(target), "--levels", "2",
                 "--pixel-size", "0.5,0.25", "--unit", "um"]) == 0
    meta = _multiscale(zarr.open_group(str(target), mode="r"))
    assert meta["axes"] == [{"name": "y", **UM}, {"name": "x", **UM}]
    assert [d["coordinateTransformations"][0]["scale"] for d in meta["datasets"]] == [[0.5, 0.25], [1.0, 0.5],
                                                                                      [2.0, 1.0]]
    assert main(["pool", str(tmp_path / "x.npy"), "-o", str(tmp_path / "q.ome.zarr"), "-k", "4",
                 "--pixel-size", "0.5", "--unit", "nanometer"]) == 0
    meta = _multiscale(zarr.open_group(str(tmp_path / "q.ome.zarr"), mode="r"))
    assert meta["axes"] == [{"name": "y", "type": "space", "unit": "nanometer"},
                            {"name": "x", "type": "space", "unit": "nanometer"}]
    assert meta["datasets"][0]["coordinateTransformations"] == [
        {"type": "scale", "scale": [2.0, 2.0]}, {"type": "translation", "translation": [0.75, 0.75]}]


@pytest.mark.parametrize(("flags", "said"), [
    (["--unit", "furlong"], "--unit 'furlong' is not one of NGFF's units"),
    (["--pixel-size", "-1"], "--pixel-size '-1' is not a list of positive sizes"),
    (["--pixel-size", "nan"], "--pixel-size 'nan' is not a list of positive sizes"),
    (["--pixel-size", "1,2,3,4"], "--pixel-size gives 4 sizes for 2 pooled axes"),
    (["--layout", "n,y,x"], "batch axis"),
    (["--layout", "yx"], "names 2 axes but the array has 3"),
    (["-k", "3,2,2"], "-k 3,2,2 must give each of the input's 3 axes 2"),
    (["-k", "1,2,2", "--axes", "1,2"], "-k and --axes both choose"),
])
def test_calibration_and_axes_flags_refuse_bad_values_in_one_line_with_exit_2(tmp_path, flags, said):
    np.save(tmp_path / "x.npy", np.zeros((4, 32, 32), np.uint8))
    done = _run("pyramid", str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.zarr"), "--levels", "1", *flags)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("poolcli: error: ") and said in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "p.zarr").exists()


def test_a_z_stack_is_named_z_y_x_and_pooled_over_z_only_when_asked(tmp_path):
    x = np.random.default_rng(6).integers(0, 256, (12, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "stack.npy", x)
    guessed = tmp_path / "guessed.zarr"  # 12 planes: z by the default guess, not 12 channels
    assert main(["pyramid", str(tmp_path / "stack.npy"), "-o", str(guessed), "--levels", "2"]) == 0
    meta = _multiscale(zarr.open_group(str(guessed), mode="r"))
    assert [(a["name"], a["type"]) for a in meta["axes"]] == [("z", "space"), ("y", "space"), ("x", "space")]

    flat = tmp_path / "flat.zarr"
    assert main(["pyramid", str(tmp_path / "stack.npy"), "-o", str(flat), "--levels", "2", "--layout", "z,y,x"]) == 0
    group = zarr.open_group(str(flat), mode="r")
    assert [group[str(k)].shape for k in range(3)] == [(12, 64, 64), (12, 32, 32), (12, 16, 16)]
    assert _multiscale(group)["datasets"][2]["coordinateTransformations"][0]["scale"] == [1.0, 4.0, 4.0]
    np.testing.assert_array_equal(group["2"][:], pool(x, 4, axes=(1, 2), mode="avg", dtype=np.uint8))

    deep = tmp_path / "deep.zarr"
    assert main(["pyramid", str(tmp_path / "stack.npy"), "-o", str(deep), "--levels", "2", "--layout", "zyx",
                 "-k", "2,2,2", "--zarr-format", "3"]) == 0
    group = zarr.open_group(str(deep), mode="r")
    ImageV05.from_zarr(group)
    assert [group[str(k)].shape for k in range(3)] == [(12, 64, 64), (6, 32, 32), (3, 16, 16)]
    assert _multiscale(group)["datasets"][1]["coordinateTransformations"] == [
        {"type": "scale", "scale": [2.0, 2.0, 2.0]}, {"type": "translation", "translation": [0.5, 0.5, 0.5]}]
    np.testing.assert_array_equal(group["2"][:], pool(x, 4, axes=(0, 1, 2), mode="avg", dtype=np.uint8))

    kept = tmp_path / "kept.zarr"  # -k 1,2,2: the same levels as z unpooled
    assert main(["pyramid", str(tmp_path / "stack.npy"), "-o", str(kept), "--levels", "2", "-k", "1,2,2"]) == 0
    np.testing.assert_array_equal(zarr.open_group(str(kept), mode="r")["2"][:], group_2 := pool(
        x, 4, axes=(1, 2), mode="avg", dtype=np.uint8))
    assert group_2.shape == (12, 16, 16)


def test_a_layout_that_puts_channels_last_is_stored_in_ngff_order(tmp_path):
    x = np.random.default_rng(7).integers(0, 256, (32, 48, 5), dtype=np.uint8)
    np.save(tmp_path / "yxc.npy", x)
    target = tmp_path / "yxc.zarr"
    assert main(["pyramid", str(tmp_path / "yxc.npy"), "-o", str(target), "--levels", "1", "--layout", "y,x,c"]) == 0
    group = zarr.open_group(str(target), mode="r")
    ImageV04.from_zarr(group)
    assert [a["name"] for a in _multiscale(group)["axes"]] == ["c", "y", "x"]
    np.testing.assert_array_equal(group["0"][:], x.transpose(2, 0, 1))
    assert len(_omero(group)["channels"]) == 5


def test_info_lists_the_levels_of_an_ome_zarr_and_states_the_axes_guess(tmp_path, capsys):
    x = np.zeros((2, 64, 64), np.uint16)
    axes = [{"name": "c", "type": "channel"}, {"name": "y", **UM}, {"name": "x", **UM}]
    source = _ome_input(tmp_path / "in.ome.zarr", x, axes, [1.0, 0.5, 0.5], [0.0, 0.0, 0.0])
    assert main(["pyramid", str(source), "-o", str(tmp_path / "p.zarr"), "--levels", "2"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "p.zarr"), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert [level["shape"] for level in described["levels"]] == [[2, 64, 64], [2, 32, 32], [2, 16, 16]]
    assert described["levels"][2]["scale"] == [1.0, 2.0, 2.0]
    assert described["levels"][2]["translation"] == [0.0, 0.75, 0.75]
    assert described["levels"][1]["units"] == ["", "micrometer", "micrometer"]
    assert described["levels"][0]["axes"] == ["c", "y", "x"]
    assert described["arrays"]["array"]["axis_names_from"] == "metadata"
    assert main(["info", str(tmp_path / "p.zarr")]) == 0
    printed = capsys.readouterr().out
    assert "OME axes c,y,x, from the metadata" in printed and "0.75" in printed and "micrometer" in printed

    np.save(tmp_path / "stack.npy", np.zeros((9, 16, 16), np.uint8))
    zarr.create_array(store=str(tmp_path / "stack.zarr"), shape=(9, 16, 16), dtype=np.uint8)
    assert main(["info", str(tmp_path / "stack.zarr"), "--json"]) == 0
    array = json.loads(capsys.readouterr().out)["arrays"]["array"]
    assert array["axis_names"] == ["z", "y", "x"] and array["axis_names_from"].startswith("guessed")


def test_ome_zarr_py_reads_levels_transforms_and_units_back(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    x = np.random.default_rng(8).integers(0, 256, (3, 64, 80), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    for zarr_format in (2, 3):
        target = tmp_path / f"v{zarr_format}.zarr"
        assert main(["pyramid", str(tmp_path / "x.npy"), "-o", str(target), "--levels", "2", "--zarr-format",
                     str(zarr_format), "--pixel-size", "0.25", "--unit", "micrometer"]) == 0
        (node,) = list(Reader(parse_url(str(target)))())[:1]
        assert [tuple(level.shape) for level in node.data] == [(3, 64, 80), (3, 32, 40), (3, 16, 20)]
        np.testing.assert_array_equal(np.asarray(node.data[2]), pool(x, 4, axes=(1, 2), mode="avg", dtype=np.uint8))
        assert [a.get("unit") for a in node.metadata["axes"]] == [None, "micrometer", "micrometer"]
        assert node.metadata["coordinateTransformations"][2] == [
            {"type": "scale", "scale": [1.0, 1.0, 1.0]}, {"type": "translation", "translation": [0.0, 0.375, 0.375]}]
        assert node.metadata["channel_names"] == ["channel 0", "channel 1", "channel 2"]


@pytest.mark.parametrize("multiscale", [
    {"axes": ["c", "y", "x"], "datasets": [{"path": "0", "coordinateTransformations": 5}]},
    {"axes": [{"name": "c"}, {"name": "y"}, {"name": "x"}],
     "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, -2, 1e999]}]}]},
    {"axes": [{"name": "angle"}, {"name": "y"}, {"name": "x"}], "datasets": [{"path": "0"}, {"path": "../x"},
                                                                          {"path": 7}, {"path": "1"}]},
    {"axes": 3, "datasets": [{"path": "0", "coordinateTransformations": [{"type": "affine"}, "scale"]}],
     "coordinateTransformations": {"type": "scale"}},
])
def test_metadata_poolcli_cannot_carry_is_left_out_and_the_data_still_pyramided(tmp_path, multiscale):
    """Odd or hostile OME-Zarr metadata (negative or infinite scales, unknown axes, paths out of the
    store, transforms that are not lists) gives no calibration, never a crash: the axes are guessed."""
    x = np.random.default_rng(9).integers(0, 256, (2, 32, 32), dtype=np.uint8)
    group = zarr.open_group(str(tmp_path / "odd.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=x.shape, chunks=x.shape, dtype=x.dtype)[:] = x
    group.attrs.update({"multiscales": [{"version": "0.4", **multiscale}]})
    done = _run("pyramid", str(tmp_path / "odd.zarr"), "-o", str(tmp_path / "p.zarr"), "--levels", "1")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    meta = _multiscale(zarr.open_group(str(tmp_path / "p.zarr"), mode="r"))
    assert [a["name"] for a in meta["axes"]] == ["c", "y", "x"] and "unit" not in meta["axes"][1]
    assert meta["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 1.0, 1.0]
