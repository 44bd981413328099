"""`posecli track`: an ID on every pose in every format, stable on real video, MOT rows, image
sequences, annotated copies with a colour per ID, and one-line errors."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import av
import cv2
import jsonschema
import numpy as np
import pytest

from posecli import PoseEstimator
from posecli.cli.track import tracking_stage
from posecli.core.geometry import box_iou_matrix
from posecli.core.results import Pose
from posecli.output.draw import box_color
from posecli.tracking.stage import TrackOptions

from conftest import BUS, SHARED, ZIDANE, jsonl_records, ok_records, run_cli

PETS = SHARED / "videos" / "pets-vtest.avi"
PETS_FRAMES = 795
CLIP_START, CLIP_FRAMES = 520, 80  # a stretch of PETS where the model finds several people
SCHEMA = json.loads((Path(__file__).parents[1] / "src/posecli/pose-result.schema.json").read_text())


def cut_clip(src: Path, dest: Path, start: int, count: int) -> None:
    """Frames start..start+count-1 of src re-encoded to H.264 in dest with PyAV, same rate."""
    with av.open(str(src)) as inp, av.open(str(dest), "w") as out:
        stream_in = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=stream_in.average_rate)
        stream.width, stream.height, stream.pix_fmt = stream_in.width, stream_in.height, "yuv420p"
        for index, frame in enumerate(inp.decode(stream_in)):
            if index >= start + count:
                break
            if index >= start:
                bgr = frame.to_ndarray(format="bgr24")
                out.mux(stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")))
        out.mux(stream.encode(None))


def mot_lines(text: str) -> list[list[str]]:
    """The comma-separated fields of each MOT line."""
    return [line.split(",") for line in text.splitlines()]


def all_ids(records: list[dict]) -> list[list[int]]:
    """The IDs of each record's poses."""
    return [[p["id"] for p in r["poses"]] for r in records]


@pytest.fixture(scope="module")
def pets_mot(tmp_path_factory):
    """The whole PETS video through `posecli track --format mot`."""
    out = tmp_path_factory.mktemp("mot") / "out.txt"
    proc = run_cli("track", PETS, "--format", "mot", "-o", out)
    return proc, out


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """80 frames of PETS (10 fps) in which the model finds people walking and crossing."""
    path = tmp_path_factory.mktemp("clip") / "pets-clip.mp4"
    cut_clip(PETS, path, CLIP_START, CLIP_FRAMES)
    return path


@pytest.fixture(scope="module")
def clip_jsonl(clip, tmp_path_factory):
    """The clip tracked to JSONL with an annotated copy (full-size frames: the other runs on the
    clip that compare with it give --full-decode)."""
    root = tmp_path_factory.mktemp("clip-run")
    proc = run_cli("track", clip, "-f", "jsonl", "--save-dir", root / "saved")
    assert proc.returncode == 0, proc.stderr.decode()
    return jsonl_records(proc.stdout), root / "saved" / "pets-clip.mp4"


@pytest.fixture(scope="module")
def frame_folder(clip, tmp_path_factory) -> Path:
    """The clip's first 30 frames as PNG files named in order."""
    folder = tmp_path_factory.mktemp("frames")
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == 30:
                break
            bgr = cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
            cv2.imwrite(str(folder / f"frame_{index:03d}.png"), bgr)
    return folder


def test_mot_rows_of_the_whole_pets_video(pets_mot):
    proc, out = pets_mot
    assert proc.returncode == 0, proc.stderr.decode()
    assert f"{PETS_FRAMES} frames" in proc.stderr.decode()
    rows = mot_lines(out.read_text())
    assert len(rows) > 100 and all(len(row) == 10 for row in rows)
    frames = np.array([int(r[0]) for r in rows])
    ids = np.array([int(r[1]) for r in rows])
    boxes = np.array([[float(v) for v in r[2:6]] for r in rows])
    scores = np.array([float(r[6]) for r in rows])
    assert frames.min() >= 1 and frames.max() <= PETS_FRAMES
    assert (np.diff(frames) >= 0).all()
    assert (ids >= 1).all() and (boxes[:, 2:] > 0).all()
    assert ((scores >= 0.1) & (scores <= 1)).all()  # down to --track-low, the default --conf
    assert all(r[7:] == ["-1", "-1", "-1"] for r in rows)
    assert len(set(zip(frames.tolist(), ids.tolist(), strict=True))) == len(rows)  # one per frame
    assert len(set(ids.tolist())) < len(rows) / 5  # IDs last: several frames each on average


def test_every_pose_of_every_record_has_an_id(clip_jsonl):
    records, _ = clip_jsonl
    assert [r["frame"] for r in records] == list(range(CLIP_FRAMES))
    for record in records:
        jsonschema.validate(record, SCHEMA)
        ids = [p["id"] for p in record["poses"]]
        assert all(isinstance(i, int) and i >= 1 for i in ids)
        assert len(set(ids)) == len(ids)
    assert sum(len(r["poses"]) for r in records) > CLIP_FRAMES


def test_people_keep_their_id_from_frame_to_frame(clip_jsonl):
    """A person whose box overlaps one box of the previous frame, and only that one, by IoU
    0.5 or more, has that box's ID; and someone is followed for half the clip or more."""
    records, _ = clip_jsonl
    checked = 0
    for before, after in itertools.pairwise(records):
        if not before["poses"] or not after["poses"]:
            continue
        iou = box_iou_matrix(
            np.array([p["box"] for p in before["poses"]]),
            np.array([p["box"] for p in after["poses"]]),
        )
        close = iou >= 0.5
        for i, j in zip(*np.nonzero(close), strict=True):
            if close[i].sum() == 1 and close[:, j].sum() == 1:
                assert before["poses"][i]["id"] == after["poses"][j]["id"]
                checked += 1
    assert checked > CLIP_FRAMES
    counts = np.unique([i for ids in all_ids(records) for i in ids], return_counts=True)[1]
    assert counts.max() >= CLIP_FRAMES / 2


def test_csv_has_the_id_of_every_person(clip, clip_jsonl):
    records, _ = clip_jsonl
    proc = run_cli("track", clip, "--full-decode", "-f", "csv")
    assert proc.returncode == 0, proc.stderr.decode()
    rows = list(csv.DictReader(io.StringIO(proc.stdout.decode())))
    assert list(rows[0])[:6] == ["image", "frame", "time", "person", "id", "score"]
    from_csv = [(int(r["frame"]), int(r["id"]), float(r["x1"])) for r in rows]
    from_jsonl = [(r["frame"], p["id"], p["box"][0]) for r in records for p in r["poses"]]
    assert from_csv == from_jsonl


def test_mot_rows_match_the_jsonl_records(clip, clip_jsonl, tmp_path):
    records, _ = clip_jsonl
    out = tmp_path / "clip.txt"
    assert run_cli("track", clip, "--full-decode", "-f", "mot", "-o", out).returncode == 0
    expected = [
        [r["frame"] + 1, p["id"], p["box"][0], p["box"][1]] for r in records for p in r["poses"]
    ]
    rows = [[int(r[0]), int(r[1]), float(r[2]), float(r[3])] for r in mot_lines(out.read_text())]
    assert rows == expected


def test_text_lines_show_the_ids(clip, clip_jsonl):
    records, _ = clip_jsonl
    proc = run_cli("track", clip, "--full-decode", "-f", "text")
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == CLIP_FRAMES
    for line, ids in zip(lines, all_ids(records), strict=True):
        assert [int(part.split(":")[0]) for part in line.split("id ")[1:]] == ids


def test_annotated_copy_has_every_frame(clip_jsonl):
    _, saved = clip_jsonl
    with av.open(str(saved)) as container:
        assert sum(1 for _ in container.decode(video=0)) == CLIP_FRAMES


def test_a_sequence_of_images_is_tracked_like_the_video(clip, frame_folder, tmp_path):
    """PNG frames with --sequence at the video's rate give the video's IDs and boxes (a frame
    gives the poses of the same frame saved as a PNG), with frame and time from their order."""
    proc = run_cli("track", frame_folder, "--sequence", "--fps", "10", "-f", "jsonl",
                   "--save-dir", tmp_path / "saved")  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    records = jsonl_records(proc.stdout)
    assert [r["frame"] for r in records] == list(range(30))
    assert [r["time"] for r in records] == pytest.approx([i / 10 for i in range(30)])
    video = jsonl_records(run_cli("track", clip, "-f", "jsonl").stdout)[:30]
    assert all_ids(records) == all_ids(video)
    boxes = [[p["box"] for p in r["poses"]] for r in records]
    assert boxes == [[p["box"] for p in r["poses"]] for r in video]
    assert sum(map(len, boxes)) > 30
    poses = sum(map(len, boxes))
    summary = proc.stderr.decode().splitlines()[-1]
    assert summary.startswith(f"30 images, {poses} poses, 0 failed in "), summary  # not 0 images
    check_id_colours(tmp_path / "saved", records)


def check_id_colours(saved: Path, records: list[dict]) -> None:
    """Each tracked box in the annotated PNGs is drawn in its ID's colour, not its index's."""
    checked = 0
    for record in records:
        image = cv2.imread(str(saved / Path(record["image"]).name))
        for pose in record["poses"]:
            x1, y1, _, y2 = np.round(pose["box"]).astype(int)
            color = box_color(Pose(0.0, np.zeros(4), np.zeros((17, 3)), pose["id"]))
            left_edge = image[(y1 + y2) // 2, x1]
            checked += tuple(int(v) for v in left_edge) == color
    assert checked >= 0.8 * sum(len(r["poses"]) for r in records)  # some edges are drawn over


@pytest.mark.parametrize("glob", [False, True])
def test_a_sequence_folder_or_glob_is_in_natural_order(tmp_path, glob):
    """f9, f10, f11 are frames 0, 1, 2 (by name they would be f10, f11, f9)."""
    for name in ("f10", "f9", "f11"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.zeros((64, 64, 3), np.uint8))
    source = f"{tmp_path}/f*.png" if glob else tmp_path
    proc = run_cli("track", source, "--sequence", "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr.decode()
    order = [(Path(r["image"]).stem, r["frame"]) for r in jsonl_records(proc.stdout)]
    assert order == [("f9", 0), ("f10", 1), ("f11", 2)]


def test_a_missing_image_of_a_sequence_keeps_its_place(frame_folder):
    """A name that does not exist is a failed frame where it was given (one error line), so the
    images after it keep their frame numbers; a pattern that matches nothing is no frame."""
    paths = sorted(frame_folder.glob("*.png"))[:3]
    missing, nothing = frame_folder / "missing.png", frame_folder / "nomatch*.png"
    folder = f"{frame_folder}/no-folder/"  # a missing folder holds no known number of frames
    proc = run_cli("track", paths[0], missing, paths[1], nothing, folder, paths[2], "--sequence",
                   "-f", "jsonl")  # fmt: skip
    assert proc.returncode == 1
    records = jsonl_records(proc.stdout)
    frames = {Path(r["image"]).name: r["frame"] for r in records if "frame" in r}
    assert [frames[p.name] for p in paths] == [0, 2, 3] and frames["missing.png"] == 1
    errors = proc.stderr.decode()
    assert errors.count("error") == 3 and str(missing) in errors and folder in errors


def test_images_without_sequence_are_tracked_each_on_their_own(frame_folder):
    paths = sorted(frame_folder.glob("*.png"))[:5]
    proc = run_cli("track", *paths, BUS, "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr.decode()
    records = jsonl_records(proc.stdout)
    assert len(records) == 6 and all("frame" not in r for r in records)
    assert len(records[-1]["poses"]) >= 3
    for ids in all_ids(records):
        assert ids == list(range(1, len(ids) + 1))
    scores = [p["score"] for r in records for p in r["poses"]]
    assert min(scores) >= 0.25  # only people sure enough to start a track


def test_ids_are_distinct_colours():
    colours = {box_color(Pose(0.0, np.zeros(4), np.zeros((17, 3)), i)) for i in range(1, 41)}
    assert len(colours) == 40


def test_smoothing_moves_keypoints_not_ids(clip_jsonl, clip):
    records, _ = clip_jsonl
    smooth = jsonl_records(
        run_cli("track", clip, "--full-decode", "--smooth", "-f", "jsonl").stdout
    )
    assert all_ids(smooth) == all_ids(records)  # smoothing moves keypoints, not IDs
    raw = np.array([p["keypoints"] for r in records for p in r["poses"]])
    filtered = np.array([p["keypoints"] for r in smooth for p in r["poses"]])
    assert not np.allclose(raw, filtered)
    assert np.abs(raw - filtered)[..., :2].mean() < 5  # pixels: steadier, not elsewhere


def one_error_line(proc) -> str:
    """The single stderr line of a refused run."""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("posecli: error: ")
    return lines[0]


def test_mot_refuses_more_than_one_source_and_lone_images(clip, tmp_path):
    out = tmp_path / "out.txt"
    proc = run_cli("track", clip, BUS, "-f", "mot", "-o", out)
    assert proc.returncode == 2 and f"{BUS}: --format mot takes one video" in one_error_line(proc)
    proc = run_cli("track", "--sequence", BUS, ZIDANE, clip, "-f", "mot", "-o", out)
    assert proc.returncode == 2 and f"{clip}: --format mot takes one video" in one_error_line(proc)
    proc = run_cli("track", BUS, "-f", "mot", "-o", out)
    assert proc.returncode == 2 and "only as the frames of one --sequence" in one_error_line(proc)
    assert not out.exists()


def test_bad_sources_give_one_line_and_the_rest_is_tracked(clip, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    proc = run_cli("track", empty, tmp_path / "missing.avi", BUS, "-f", "jsonl")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.decode().splitlines() if "error" in line]
    assert len(errors) == 2 and all(line.startswith("posecli: error: ") for line in errors)
    records = ok_records(proc.stdout)
    assert [Path(r["image"]).name for r in records] == ["bus.jpg"]
    assert all("id" in p for p in records[0]["poses"])


def test_conflicting_options_are_usage_errors():
    proc = run_cli("track", BUS, "--track-low", "0.5", "--track-high", "0.3")
    assert proc.returncode == 2 and b"--track-low 0.5 is above --track-high 0.3" in proc.stderr
    proc = run_cli("track", BUS, "--sequence", "--shard", "0/2")
    assert proc.returncode == 2 and b"--sequence tracks all the images" in proc.stderr


@pytest.mark.parametrize(
    ("option", "value", "needs"),
    [("--fps", "25", "--sequence"), ("--smooth-beta", "5", "--smooth"),
     ("--smooth-min-cutoff", "0.5", "--smooth")],
)  # fmt: skip
def test_an_option_without_the_one_it_tunes_is_a_usage_error(option, value, needs):
    """--fps sets the rate of --sequence images (videos have their own), the --smooth-* options
    tune --smooth: given alone they would be silently ignored."""
    proc = run_cli("track", BUS, option, value)
    assert proc.returncode == 2 and f"{option} applies only with {needs}".encode() in proc.stderr
    proc = run_cli("track", BUS, "--box-only", "--keypoint-weight", "0.5")
    assert proc.returncode == 2
    assert b"--keypoint-weight does not apply with --box-only" in proc.stderr
    assert not proc.stdout


def test_tracking_matches_keypoints_with_the_model_spec_sigmas(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("kpt_shape: [17, 3]\nsigmas: [" + ", ".join(["0.5"] * 17) + "]\n")
    stage = tracking_stage(TrackOptions(), PoseEstimator(kpt_spec=spec))
    tracker = stage.keywords["options"].new_tracker()
    assert np.array_equal(tracker.sigmas, np.full(17, 0.5))


def test_a_still_camera_moves_no_track(clip, clip_jsonl):
    """PETS is filmed by a still camera: measured camera motion changes no ID and no box."""
    proc = run_cli("track", clip, "--full-decode", "--no-camera-motion", "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr.decode()
    still, moving = jsonl_records(proc.stdout), clip_jsonl[0]
    assert sum(map(len, all_ids(still))) > 30
    assert all_ids(still) == all_ids(moving)
    boxes = [[p["box"] for p in r["poses"]] for r in still]
    assert boxes == [[p["box"] for p in r["poses"]] for r in moving]
