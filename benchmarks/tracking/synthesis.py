"""Videos with exact ground truth: a virtual camera films an annotated COCO photo while an
occluder sweeps across, then sensor noise and H.264."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from pycocotools.coco import COCO

ROOT = Path(__file__).resolve().parents[2]
COCO_DIR = ROOT.parent / "shared" / "coco"
WIDTH, HEIGHT, FPS = 640, 360, 30
ASPECT = (16, 9)  # WIDTH : HEIGHT, the camera's views
FRAMES = (60, 120)  # fewest and most frames of a video
VIEW_WIDTHS = (0.4, 0.85)  # the camera's view, as shares of the widest view the photo allows
BAND_WIDTHS = (0.25, 0.35)  # the occluder's width, as shares of the frame's
HIDDEN_SECONDS = (1.0, 1.6)  # how long the occluder hides a point it passes
MIN_HEIGHT, MIN_VISIBLE = 40, 0.5  # smaller or more hidden people are ignore regions
NOISE = 3.0  # sensor noise, grey levels (standard deviation)
CRF = 23  # libx264's quality
PICK_PEOPLE, PICK_HEIGHT, PICK_KEYPOINTS = 2, 100, 5  # a photo needs this many people this
# tall (px) with this many labelled keypoints
STILL_FRAMES = 60  # frames of a still-camera video


@dataclass
class Person:
    """One COCO annotation, its mask cropped to its box."""

    mask: np.ndarray  # bool, photo pixels from (x0, y0)
    x0: int
    y0: int
    keypoints: np.ndarray  # (17, 3) photo pixels, COCO visibility
    crowd: bool


@dataclass
class Truth:
    """Ground truth of one frame."""

    ids: np.ndarray  # (G,) people scored in this frame
    boxes: np.ndarray  # (G, 4) their visible boxes
    keypoints: np.ndarray  # (G, 17, 3) x, y, 1 where visible (else 0)
    areas: np.ndarray  # (G,) visible mask area, frame pixels
    ignore: np.ndarray  # (I, 4) boxes of people too small or hidden
    ignore_ids: np.ndarray  # (I,) whose they are
    crowd: np.ndarray  # (C, 4) COCO crowd regions


@dataclass
class Sequence:
    """A rendered video with its ground truth."""

    name: str
    frames: list[np.ndarray]
    truth: list[Truth]
    mats: np.ndarray  # (N, 2, 3) photo-to-frame transforms
    people: int  # identities that are scored in at least one frame


def load_coco() -> COCO:
    """The shared COCO dev annotations, loaded quietly."""
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(COCO_DIR / "person_keypoints_val2017_dev.json"))


def read_photo(coco: COCO, image_id: int) -> np.ndarray:
    """The BGR pixels of a COCO photo."""
    return cv2.imread(str(COCO_DIR / "val2017" / coco.imgs[image_id]["file_name"]))


def load_people(coco: COCO, image_id: int) -> list[Person]:
    """Every person annotation of an image, crowd regions included."""
    people = []
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=[1])):
        full = coco.annToMask(ann).astype(bool)
        ys, xs = np.nonzero(full)
        if not len(xs):
            continue
        x0, y0 = xs.min(), ys.min()
        mask = full[y0 : ys.max() + 1, x0 : xs.max() + 1]
        kpts = np.array(ann["keypoints"], np.float64).reshape(-1, 3)
        people.append(Person(mask, int(x0), int(y0), kpts, bool(ann["iscrowd"])))
    return people


def pick_images(coco: COCO, count: int) -> list[int]:
    """The first `count` images by id with PICK_PEOPLE people PICK_HEIGHT px or taller with
    PICK_KEYPOINTS or more labelled keypoints (people the model can see)."""
    picked = []
    for image_id in sorted(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=[1], iscrowd=False))
        tall = sum(a["bbox"][3] >= PICK_HEIGHT and a["num_keypoints"] >= PICK_KEYPOINTS
                   for a in anns)  # fmt: skip
        if tall >= PICK_PEOPLE:
            picked.append(image_id)
    return picked[:count]


def camera_path(rng: np.random.Generator, w: int, h: int, n: int, aims: np.ndarray) -> np.ndarray:
    """(n, 2, 3) transforms of a camera that eases from one random view of the frame's shape to
    another, each centred near one of the (P, 2) aim points (people) of the photo."""
    widest = min(w, h * ASPECT[0] / ASPECT[1])
    keys = []
    for _ in range(2):
        cw = widest * rng.uniform(*VIEW_WIDTHS)
        ch = cw * ASPECT[1] / ASPECT[0]
        aim = aims[rng.integers(len(aims))] + rng.normal(0, 0.15 * cw, 2)
        keys.append((np.clip(aim[0], cw / 2, w - cw / 2), np.clip(aim[1], ch / 2, h - ch / 2), cw))
    (x0, y0, w0), (x1, y1, w1) = keys
    ease = (1 - np.cos(np.pi * np.linspace(0, 1, n))) / 2
    cx, cy, cw = x0 + (x1 - x0) * ease, y0 + (y1 - y0) * ease, w0 + (w1 - w0) * ease
    s = WIDTH / cw
    mats = np.zeros((n, 2, 3))
    mats[:, 0, 0] = mats[:, 1, 1] = s
    mats[:, 0, 2] = WIDTH / 2 - s * cx
    mats[:, 1, 2] = HEIGHT / 2 - s * cy
    return mats


def aim_points(people: list[Person]) -> np.ndarray:
    """(P, 2) mask centres of the people who are not crowd regions."""
    return np.array(
        [(p.x0 + p.mask.shape[1] / 2, p.y0 + p.mask.shape[0] / 2) for p in people if not p.crowd]
    )


def occluder_path(rng: np.random.Generator, n: int) -> tuple[int, np.ndarray]:
    """Width and per-frame left edge of a band that hides a point for HIDDEN_SECONDS."""
    band = int(WIDTH * rng.uniform(*BAND_WIDTHS))
    speed = band / (rng.uniform(*HIDDEN_SECONDS) * FPS)
    travel = speed * n
    start = rng.uniform(-band, WIDTH - travel) if travel < WIDTH + band else -band
    x = start + speed * np.arange(n)
    return band, (x if rng.random() < 0.5 else WIDTH - band - x)


def occluder_image(coco: COCO, rng: np.random.Generator, band: int) -> np.ndarray:
    """A strip of a COCO photo without people, as tall as the frame."""
    empty = [i for i in sorted(coco.getImgIds()) if not coco.getAnnIds(imgIds=[i], catIds=[1])]
    photo = read_photo(coco, empty[rng.integers(len(empty))])
    h, w = photo.shape[:2]
    strip_w = max(int(band * h / HEIGHT), 1)
    x = rng.integers(0, max(w - strip_w, 1))
    return cv2.resize(photo[:, x : x + strip_w], (band, HEIGHT), interpolation=cv2.INTER_AREA)


def paste_occluder(frame: np.ndarray, strip: np.ndarray, left: int) -> None:
    """Cover the frame's columns from `left` with the strip (the part inside the frame)."""
    band = strip.shape[1]
    right = left + band
    frame[:, max(left, 0) : max(min(right, WIDTH), 0)] = strip[
        :, max(-left, 0) : band - max(right - WIDTH, 0)
    ]


def visible_mask(person: Person, mat: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """The person's mask pixels that land in the frame and outside the occluder."""
    s, tx, ty = mat[0, 0], mat[0, 2], mat[1, 2]
    h, w = person.mask.shape
    fx = s * (person.x0 + np.arange(w) + 0.5) + tx
    fy = s * (person.y0 + np.arange(h) + 0.5) + ty
    cols = (fx >= 0) & (fx < WIDTH) & ~((fx >= band[0]) & (fx < band[1]))
    rows = (fy >= 0) & (fy < HEIGHT)
    return person.mask & rows[:, None] & cols[None, :]


def frame_keypoints(person: Person, mat: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """(17, 3) the person's keypoints in the frame, visibility 1 where labelled and seen, else
    all zero."""
    s, tx, ty = mat[0, 0], mat[0, 2], mat[1, 2]
    k = person.keypoints.copy()
    k[:, :2] = k[:, :2] * s + [tx, ty]
    shown = (k[:, 2] > 0) & (k[:, 0] >= 0) & (k[:, 0] < WIDTH) & (k[:, 1] >= 0)
    shown &= (k[:, 1] < HEIGHT) & ~((k[:, 0] >= band[0]) & (k[:, 0] < band[1]))
    k[:, 2] = shown
    k[~shown] = 0
    return k


def frame_truth(people: list[Person], mat: np.ndarray, band: tuple[float, float]) -> Truth:
    """Visible boxes, keypoints and areas of the people in one frame."""
    s, tx, ty = mat[0, 0], mat[0, 2], mat[1, 2]
    ids, boxes, kpts, areas, ignore, ignore_ids, crowd = [], [], [], [], [], [], []
    for pid, p in enumerate(people):
        visible = visible_mask(p, mat, band)
        ys, xs = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
        if not len(xs):
            continue
        box = np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], np.float64)
        box = box * s + [p.x0 * s + tx, p.y0 * s + ty] * 2
        if p.crowd:
            crowd.append(box)
            continue
        share = visible.sum() / p.mask.sum()
        if box[3] - box[1] < MIN_HEIGHT or share < MIN_VISIBLE:
            ignore.append(box)
            ignore_ids.append(pid + 1)
            continue
        ids.append(pid + 1)
        boxes.append(box)
        kpts.append(frame_keypoints(p, mat, band))
        areas.append(visible.sum() * s * s)
    return Truth(
        np.array(ids, np.int64), np.array(boxes).reshape(-1, 4), np.array(kpts).reshape(-1, 17, 3),
        np.array(areas), np.array(ignore).reshape(-1, 4), np.array(ignore_ids, np.int64),
        np.array(crowd).reshape(-1, 4),
    )  # fmt: skip


def add_noise(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sensor noise, drawn from `rng` (so each video's noise is its own, whatever was
    rendered before it)."""
    noise = np.rint(rng.standard_normal(frame.shape, np.float32) * NOISE)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def h264(frames: list[np.ndarray], crf: int = CRF) -> list[np.ndarray]:
    """The frames after an in-memory libx264 encode and decode."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"crf": str(crf), "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as source:
        return [f.to_ndarray(format="bgr24") for f in source.decode(video=0)]


def make_sequence(coco: COCO, image_id: int) -> Sequence:
    """The pan-and-zoom video of one photo, with an occluder sweeping across."""
    rng = np.random.default_rng(image_id)
    info = coco.imgs[image_id]
    photo = read_photo(coco, image_id)
    n = int(rng.integers(FRAMES[0], FRAMES[1] + 1))
    people = load_people(coco, image_id)
    mats = camera_path(rng, info["width"], info["height"], n, aim_points(people))
    band, xs = occluder_path(rng, n)
    strip = occluder_image(coco, rng, band)
    frames, truth = [], []
    for mat, x in zip(mats, xs, strict=True):
        frame = cv2.warpAffine(photo, mat, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        left = round(float(x))
        paste_occluder(frame, strip, left)
        frames.append(add_noise(frame, rng))
        truth.append(frame_truth(people, mat, (left, left + band)))
    scored = {int(i) for t in truth for i in t.ids}
    return Sequence(info["file_name"], h264(frames), truth, mats, len(scored))


def still_sequence(coco: COCO, image_id: int, n: int = STILL_FRAMES) -> Sequence:
    """A still camera on one photo for n frames, each with fresh sensor noise, then H.264 (no
    ground truth: it measures jitter)."""
    rng = np.random.default_rng(image_id + 1)
    info = coco.imgs[image_id]
    aims = aim_points(load_people(coco, image_id))
    mat = camera_path(rng, info["width"], info["height"], 2, aims)[0]
    frame = cv2.warpAffine(read_photo(coco, image_id), mat, (WIDTH, HEIGHT),
                           flags=cv2.INTER_LINEAR)  # fmt: skip
    frames = h264([add_noise(frame, rng) for _ in range(n)])
    return Sequence(f"still {image_id}", frames, [], np.empty(0), 0)


def export_frames(sequences: list[Sequence], directory: Path) -> None:
    """Every video's frames as PNG files, `directory/<video>/000001.png` on, for other trackers."""
    for seq in sequences:
        folder = directory / Path(seq.name).stem
        folder.mkdir(parents=True, exist_ok=True)
        for number, frame in enumerate(seq.frames, 1):
            cv2.imwrite(str(folder / f"{number:06d}.png"), frame)
