"""The command line at its boundary: exit codes, messages, files written and not written.

The pooling math is tested in test_engine*.py; here each output is checked against the
engine's answer on the loaded input only to show the command wired it through.
"""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import poolcli
from poolcli import io, pool
from poolcli.cli import main
from poolcli.io import atomic, writing

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PHOTO = SAMPLES / "astronaut.jpg"
GRAY = SAMPLES / "camera.png"
GRAY16 = SAMPLES / "coffee_gray16.png"
FEATURES = SAMPLES / "features_chw.npy"
SERIES = SAMPLES / "co2_weekly.npy"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def assert_one_line_error(err: str, *words: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("poolcli: error:"), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, err)
    return lines[0]


# ------------------------------------------------------------------ success paths


@pytest.mark.parametrize("sample", [PHOTO, GRAY, GRAY16], ids=lambda p: p.name)
@pytest.mark.parametrize("mode", ["max", "avg", "median"])
def test_image_keeps_mode_and_depth(tmp_path, capsys, sample, mode):
    target = tmp_path / f"out{'.png' if sample.suffix == '.png' else '.jpg'}"
    code, out, err = run(capsys, "pool", sample, "-o", target, "-m", mode, "-k", "3")
    assert code == 0, err
    source = io.load(sample).array
    written = io.load(target)
    assert written.array.dtype == source.dtype
    assert written.array.shape == (source.shape[0] // 3, source.shape[1] // 3, source.shape[2])
    if target.suffix == ".png":  # lossless: exactly the engine's rounded result
        expected = pool(source, 3, mode=mode, axes=(0, 1), dtype=source.dtype)
        assert np.array_equal(written.array, expected)
    assert str(sample) in out and str(target) in out


def test_jpeg_quality_defaults_to_io_and_follows_the_option(tmp_path, capsys):
    sizes = {}
    for quality in (None, 60, 95):
        target = tmp_path / f"q{quality}.jpg"
        chosen = [] if quality is None else ["--quality", quality]
        code, _, err = run(capsys, "pool", PHOTO, "-o", target, "-m", "avg", *chosen)
        assert code == 0, err
        sizes[quality] = target.stat().st_size
    photo = io.load(PHOTO)
    io.save(tmp_path / "reference.jpg", pool(photo.array, 2, mode="avg", axes=(0, 1), dtype=np.uint8), like=photo)
    assert (tmp_path / "qNone.jpg").read_bytes() == (tmp_path / "reference.jpg").read_bytes()
    assert sizes[60] < sizes[None] < sizes[95]


def test_out_dir_naming_and_json(tmp_path, capsys):
    code, out, err = run(capsys, "pool", GRAY, FEATURES, "-d", tmp_path, "-m", "avg", "-k", "2x4", "--json")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["output"]).name for r in records] == ["camera_avg_2x4.png", "features_chw_avg_2x4.npy"]
    assert records[0]["input_shape"] == [512, 512, 1] and records[0]["output_shape"] == [256, 128, 1]
    assert records[1]["output_shape"] == [8, 64, 32] and records[1]["output_dtype"] == "float32"
    assert records[0]["parameters"]["mode"] == "avg" and records[0]["seconds"] >= 0
    assert all(r["status"] == "done" for r in records)
    expected = pool(np.load(FEATURES), (2, 4), mode="avg")
    assert np.array_equal(np.load(tmp_path / "features_chw_avg_2x4.npy"), expected)


def test_default_output_goes_beside_the_input(tmp_path, capsys):
    source = tmp_path / "series.npy"
    np.save(source, np.arange(10.0))
    code, _, err = run(capsys, "pool", source, "-k", "3", "-m", "sum")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "series_sum_3.npy"), [3.0, 12.0, 21.0])


def test_npz_pools_every_key(tmp_path, capsys):
    source = tmp_path / "maps.npz"
    np.savez(source, a=np.arange(16.0).reshape(4, 4), b=np.ones((2, 6, 6), np.float32))
    target = tmp_path / "pooled.npz"
    code, _, err = run(capsys, "pool", source, "-o", target, "-k", "2")
    assert code == 0, err
    with np.load(target) as pooled:
        assert list(pooled.keys()) == ["a", "b"]
        assert pooled["a"].tolist() == [[5.0, 7.0], [13.0, 15.0]]
        assert pooled["b"].shape == (2, 3, 3)


def test_geometry_options_reach_the_engine(tmp_path, capsys):
    target = tmp_path / "f.npy"
    code, _, err = run(capsys, "pool", FEATURES, "-o", target, "-m", "lp", "--power", "3", "-k", "3",
                       "-s", "2", "-p", "1,0,1,1", "--dilation", "2,1", "--ceil-mode", "--layout", "chw")
    assert code == 0, err
    x = np.load(FEATURES)
    expected = pool(x, 3, 2, mode="lp", p=3, padding=((1, 0), (1, 1)), dilation=(2, 1), ceil_mode=True, axes=(1, 2))
    assert expected.shape == (8, 63, 65)  # rows: span 5 over 128 + 1 pad (64 undilated); columns: span 3, 2 pads
    assert np.array_equal(np.load(target), expected)


@pytest.mark.parametrize("options, keywords", [
    (["--exclude-pad", "-m", "avg", "-p", "1", "-k", "3"],
     dict(mode="avg", padding=1, window=3, count_include_pad=False)),
    (["--pad-mode", "reflect", "-m", "avg", "-p", "same", "-k", "3", "-s", "1"],
     dict(mode="avg", padding="same", window=3, stride=1, pad_mode="reflect")),
    (["--nan", "omit", "-m", "max", "-k", "4"], dict(mode="max", window=4, nan_policy="omit")),
])
def test_series_options(tmp_path, capsys, options, keywords):
    target = tmp_path / "s.npy"
    code, _, err = run(capsys, "pool", SERIES, "-o", target, *options)
    assert code == 0, err
    expected = pool(np.load(SERIES), **keywords)
    assert np.array_equal(np.load(target), expected, equal_nan=True)


def test_axes_option_and_float_dtype_to_tiff(tmp_path, capsys):
    source, target = tmp_path / "hwc.npy", tmp_path / "f.tiff"
    x = np.random.default_rng(5).normal(size=(6, 10, 3))  # float64: avg would stay float64 without --dtype
    np.save(source, x)
    code, _, err = run(capsys, "pool", source, "-o", target, "-m", "avg", "--axes", "0,1", "--dtype", "float32")
    assert code == 0, err
    written = io.load(target).array
    assert written.dtype == np.float32 and written.shape == (3, 5, 3)  # the default axes would give (6, 5, 1)
    blocks = x.reshape(3, 2, 5, 2, 3).mean(axis=(1, 3))  # height and width pooled, the channels kept
    np.testing.assert_allclose(written, blocks.astype(np.float32), rtol=1e-6)


def test_uint8_average_rounds_half_up(tmp_path, capsys):
    source = tmp_path / "tiny.png"
    Image.fromarray(np.array([[2, 3], [2, 3]], np.uint8)).save(source)
    target = tmp_path / "tiny_avg.png"
    assert run(capsys, "pool", source, "-o", target, "-m", "avg")[0] == 0
    assert io.load(target).array.ravel().tolist() == [3]


def test_float_map_to_png_needs_normalize(tmp_path, capsys):
    target = tmp_path / "f.png"
    code, _, err = run(capsys, "pool", SERIES, "-o", target)
    assert code == 1
    assert_one_line_error(err, str(target))
    assert not target.exists() and leftovers(tmp_path) == []
    features = tmp_path / "ch0.npy"
    np.save(features, np.load(FEATURES)[0])
    code, _, err = run(capsys, "pool", features, "-o", target, "--normalize", "minmax")
    assert code == 0, err
    written = io.load(target).array
    assert written.dtype == np.uint8 and written.min() == 0 and written.max() == 255


def test_info_reports_geometry_without_writing(tmp_path, capsys):
    before = set(SAMPLES.iterdir())
    code, out, err = run(capsys, "info", PHOTO, "-k", "3", "-p", "1", "--json")
    assert code == 0, err
    info = json.loads(out)
    array = info["arrays"]["array"]
    assert array["shape"] == [512, 512, 3] and array["dtype"] == "uint8" and array["layout"] == "hwc"
    assert array["output_shape"] == [171, 171, 3]
    assert [a["padding"] for a in array["axes"]] == [[1, 1], [1, 1]]
    assert [a["dropped"] for a in array["axes"]] == [0, 0]
    assert info["frames"] == 1 and info["format"] == "JPEG"
    assert set(SAMPLES.iterdir()) == before
    code, out, _ = run(capsys, "info", GRAY16, "-k", "7")
    assert code == 0
    assert "(200, 300, 1)" in out and "uint16" in out and "I;16" in out and "(28, 42, 1)" in out


def test_info_counts_dropped_rows_and_frames(tmp_path, capsys):
    source = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.full((5, 7), v, np.uint8)) for v in (10, 200)]
    frames[0].save(source, save_all=True, append_images=frames[1:])
    code, out, _ = run(capsys, "info", source, "-k", "2", "--json")
    info = json.loads(out)
    assert code == 0 and info["frames"] == 2
    assert [a["dropped"] for a in info["arrays"]["array"]["axes"]] == [1, 1]
    assert "2 pages or frames (page 0 is pooled)" in run(capsys, "info", source)[1]
    code, out, _ = run(capsys, "info", source, "--page", "1", "--json")
    assert code == 0 and json.loads(out)["arrays"]["array"]["max"] == 200


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"poolcli {poolcli.__version__}"
    for command in ("pool", "info"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "--window" in out and "--mode" in out


def test_entry_points_run_as_programs(tmp_path):
    target = tmp_path / "c.png"
    done = subprocess.run([sys.executable, "-m", "poolcli", "pool", str(GRAY), "-o", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert target.exists()
    bad = subprocess.run([sys.executable, "-m", "poolcli", "pool", str(GRAY), "-k", "0", "-o", str(target)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, "--window")


# ------------------------------------------------------------------ usage errors: exit 2


@pytest.mark.parametrize("args, words", [
    (["-m", "mean"], ["--mode", "mean", "use one of"]),
    (["-k", "0"], ["--window", "0"]),
    (["-k", "a"], ["--window", "'a'"]),
    (["-s", "-1"], ["--stride", "-1"]),
    (["-k", "2", "-p", "5"], ["--padding 5", "window-1"]),
    (["--pad-mode", "wrap"], ["--pad-mode", "wrap"]),
    (["--nan", "drop"], ["--nan", "drop"]),
    (["--dtype", "int8"], ["--dtype", "int8"]),
    (["-m", "lp", "--power", "0"], ["--power", "0"]),
    (["--axes", "0", "--layout", "hw"], ["--axes", "--layout"]),
    (["--quality", "0"], ["--quality"]),
    (["--bogus"], ["--bogus"]),
    (["--backend", "cupy"], ["--backend cupy", "poolcli[gpu]"]),
    (["--backend", "tpu"], ["--backend", "tpu"]),
    (["--max-pixels", "-5"], ["--max-pixels", "-5"]),
])
def test_bad_parameters_exit_2(tmp_path, capsys, args, words):
    target = tmp_path / "out.png"
    code, _, err = run(capsys, "pool", GRAY, "-o", target, *args)
    assert code == 2
    assert_one_line_error(err, *words)
    assert not target.exists()


def test_output_options_are_checked(tmp_path, capsys):
    code, _, err = run(capsys, "pool", GRAY, PHOTO, "-o", tmp_path / "x.png")
    assert code == 2 and "-o/--output" in err
    code, _, err = run(capsys, "pool", GRAY, "-d", tmp_path / "missing" / "deeper")
    assert code == 2 and "missing" in err and "create it first" in err
    code, _, err = run(capsys, "pool", GRAY, "-d", tmp_path / "new")  # created, as batch creates OUT
    assert code == 0 and (tmp_path / "new" / "camera_max_2.png").exists()
    code, _, err = run(capsys, "pool", GRAY, "-o", tmp_path / "new")
    assert code == 2 and "use -d" in err
    code, _, err = run(capsys, "pool")
    assert code == 2 and "Missing argument" in err


# ------------------------------------------------------------------ input and output errors: exit 1


def _bad_inputs(folder: Path) -> dict[str, Path]:
    png = GRAY.read_bytes()
    jpeg = PHOTO.read_bytes()
    files = {
        "empty.png": b"",
        "text.png": b"this is not an image\n",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpeg[: len(jpeg) // 3],
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    paths["pickled.npy"] = folder / "pickled.npy"
    np.save(paths["pickled.npy"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    paths["strings.npy"] = folder / "strings.npy"
    np.save(paths["strings.npy"], np.array(["a", "b"]))
    paths["raw.pickle.npy"] = folder / "raw.pickle.npy"
    paths["raw.pickle.npy"].write_bytes(pickle.dumps([1, 2, 3]))
    return paths


@pytest.mark.parametrize("name", ["empty.png", "text.png", "truncated.png", "truncated.jpg",
                                  "pickled.npy", "strings.npy", "raw.pickle.npy"])
def test_unreadable_inputs_exit_1(tmp_path, capsys, name):
    source = _bad_inputs(tmp_path)[name]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = run(capsys, "pool", source, "-d", out_dir)
    assert code == 1
    assert_one_line_error(err, name)
    assert list(out_dir.iterdir()) == []


def test_one_bad_input_does_not_stop_the_others(tmp_path, capsys):
    bad = _bad_inputs(tmp_path)["text.png"]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run(capsys, "pool", bad, GRAY, "-d", out_dir, "--json")
    assert code == 1
    assert (out_dir / "camera_max_2.png").exists()
    statuses = [json.loads(line)["status"] for line in out.splitlines()]
    assert statuses == ["failed", "done"]


def test_window_larger_than_image(tmp_path, capsys):
    code, _, err = run(capsys, "pool", GRAY16, "-k", "201", "-o", tmp_path / "x.png")
    assert code == 1
    assert_one_line_error(err, "coffee_gray16.png", "larger than the padded input")
    assert leftovers(tmp_path) == [] and not (tmp_path / "x.png").exists()


def test_existing_output_needs_overwrite(tmp_path, capsys):
    target = tmp_path / "out.png"
    target.write_bytes(b"keep me")
    code, _, err = run(capsys, "pool", GRAY, "-o", target)
    assert code == 1
    assert_one_line_error(err, str(target), "--overwrite")
    assert target.read_bytes() == b"keep me"
    assert run(capsys, "pool", GRAY, "-o", target, "--overwrite")[0] == 0
    assert io.load(target).array.shape == (256, 256, 1)


def test_input_is_never_overwritten(tmp_path, capsys):
    source = tmp_path / "in.png"
    source.write_bytes(GRAY.read_bytes())
    code, _, err = run(capsys, "pool", source, "-o", source, "--overwrite")
    assert code == 2  # refused up front, before any work
    assert "never overwrites an input" in assert_one_line_error(err, "in.png")
    assert source.read_bytes() == GRAY.read_bytes()


def test_unwritable_folder(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    code, _, err = run(capsys, "pool", GRAY, "-o", tmp_path / "x.png")
    assert code == 1
    assert_one_line_error(err, "x.png")
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder(tmp_path, capsys):
    code, _, err = run(capsys, "pool", GRAY, "-o", tmp_path / "no" / "x.png")
    assert code == 1
    assert_one_line_error(err, "x.png")


def test_interrupt_leaves_nothing(tmp_path, capsys, monkeypatch):
    real_encode = writing.encode_image

    def interrupted(*args, **kwargs):
        real_encode(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(writing, "encode_image", interrupted)
    code, _, err = run(capsys, "pool", GRAY, "-o", tmp_path / "x.png")
    assert code == 130
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_decompression_bomb_limit(tmp_path, capsys):
    code, _, err = run(capsys, "pool", GRAY, "-o", tmp_path / "x.png", "--max-pixels", "1000")
    assert code == 1
    assert_one_line_error(err, "camera.png", "--max-pixels")
    assert run(capsys, "pool", GRAY, "-o", tmp_path / "x.png", "--max-pixels", "0")[0] == 0


def test_debug_shows_traceback(tmp_path, capsys):
    bad = _bad_inputs(tmp_path)["text.png"]
    code, _, err = run(capsys, "pool", bad, "-o", tmp_path / "x.png", "--debug")
    assert code == 1 and "Traceback" in err


def test_backend_auto_stays_on_the_cpu_without_a_gpu(tmp_path, capsys):
    target = tmp_path / "auto.png"
    code, _, err = run(capsys, "pool", GRAY, "-o", target, "--backend", "auto")
    assert code == 0, err
    assert np.array_equal(io.load(target).array, pool(io.load(GRAY).array, 2, axes=(0, 1)))


def test_info_guesses_each_npz_array_layout(tmp_path, capsys):
    source = tmp_path / "maps.npz"
    np.savez(source, volume=np.zeros((2, 3, 4, 4)), plane=np.zeros((4, 4)))
    code, out, err = run(capsys, "info", source, "--json")
    assert code == 0, err
    layouts = {key: array["layout"] for key, array in json.loads(out)["arrays"].items()}
    assert layouts == {"volume": "nchw", "plane": "hw"}


def test_the_shape_free_checks_run_once_per_command(tmp_path, capsys, monkeypatch):
    """The pooling options are checked once without an input (a usage error there), and each input
    then only against its shape: in memory, in a .npz of several arrays, or streamed from a store."""
    import zarr

    from poolcli.core import geometry, options, spec

    calls = []

    def counted(**keywords):
        calls.append(keywords)
        return options.check_options(**keywords)

    monkeypatch.setattr(spec, "check_options", counted)
    monkeypatch.setattr(geometry, "check_options", counted)
    np.savez(tmp_path / "pair.npz", a=np.arange(16.0).reshape(4, 4), b=np.ones((6, 6)))
    zarr.create_array(store=str(tmp_path / "store.zarr"), shape=(8, 8), dtype="f4", chunks=(4, 4))[:] = 1
    inputs = [GRAY, SERIES, tmp_path / "pair.npz", tmp_path / "store.zarr"]
    code, _, err = run(capsys, "pool", *inputs, "-d", tmp_path / "out", "-m", "avg", "-k", "2", "--ceil-mode")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{p.stem}_avg_2{p.suffix}" for p in inputs)
    assert len(calls) == 1, calls


def _counted_checks(monkeypatch) -> list:
    """Every check of the pooling options without a shape, as it happens."""
    from poolcli.core import geometry, options, spec

    calls: list = []

    def counted(**keywords):
        calls.append(keywords)
        return options.check_options(**keywords)

    monkeypatch.setattr(spec, "check_options", counted)
    monkeypatch.setattr(geometry, "check_options", counted)
    return calls


def test_each_variant_of_inspect_and_compare_is_checked_once(tmp_path, capsys, monkeypatch):
    """inspect's panels and compare's cells: the options once, then each (mode, window) other than
    the options' own once (on the command line, a usage error there), never again by the page or figure."""
    small = tmp_path / "small.png"
    Image.fromarray(np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)).save(small)
    calls = _counted_checks(monkeypatch)
    code, _, err = run(capsys, "inspect", small, "-o", tmp_path / "page.html", "--modes", "max,avg,l2",
                       "--windows", "2,3")
    assert code == 0, err
    assert len(calls) == 1 + 5, calls  # the options (max 2) and the five other panels
    calls.clear()
    code, _, err = run(capsys, "compare", small, "-o", tmp_path / "grid.png", "--modes", "max,avg", "--windows", "2,4")
    assert code == 0, err
    assert len(calls) == 1 + 3, calls


def test_a_batch_gallery_checks_the_options_once(tmp_path, capsys, monkeypatch):
    """batch --html-report --inspect: one check for the run, none per file or per page."""
    src = tmp_path / "src"
    src.mkdir()
    for n in range(3):
        Image.fromarray(np.full((8, 9), 40 * n, np.uint8)).save(src / f"{n}.png")
    calls = _counted_checks(monkeypatch)
    code, _, err = run(capsys, "batch", src, "-d", tmp_path / "out", "-m", "avg", "--html-report",
                       tmp_path / "gallery.html", "--inspect", "--jobs", "1")
    assert code == 0, err
    assert len(list((tmp_path / "gallery_files").glob("inspect_*.html"))) == 3
    assert len(calls) == 1, calls
