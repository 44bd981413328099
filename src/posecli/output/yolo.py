"""`-f yolo -o DIR`: an Ultralytics pose data set of the images and the poses found in them
(DIR/images, DIR/labels/<stem>.txt, DIR/data.yaml), a starter set for retraining."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import yaml

from posecli.core import files
from posecli.core.keypoints import KeypointSpec
from posecli.core.results import ImageResult, Pose
from posecli.output.writers import Sink, Writer

VISIBLE = 0.5  # keypoint confidence from which v = 2 (visible): --kpt-conf's default
PRESENT = 0.25  # from which v = 1 (low confidence), Ultralytics' keypoint drawing threshold;
# below it v = 0 (absent) with x = y = 0, as a keypoint outside the image
DIGITS = 6  # decimals of the normalised coordinates


class FolderSink(Sink):
    """The data set folder as a writer's sink: made, with its data.yaml, at `open`; each label
    and image in it is written whole, so an interrupted run leaves a data set of the finished
    images."""

    def __init__(self, folder: Path, data_yaml: str) -> None:
        super().__init__(folder)
        self.folder, self.data_yaml = folder, data_yaml

    def open(self) -> None:
        """Make DIR/images and DIR/labels and write DIR/data.yaml; an OutputError if that fails."""
        for sub in ("images", "labels"):
            files.make_parent(self.folder / sub / "x")
        files.write_bytes_atomic(self.folder / "data.yaml", self.data_yaml.encode())

    def commit(self) -> None:
        """Nothing is left to finish: every file was written whole."""

    def abort(self) -> None:
        """Nothing to take back: the finished images' files stay."""


class YoloWriter(Writer):
    """One label file per image (an empty one without people), the image linked or copied
    beside it; failed inputs are left out."""

    def __init__(self, path: Path, spec: KeypointSpec, class_names: tuple[str, ...],
                 names: dict[str, str]) -> None:  # fmt: skip
        super().__init__(FolderSink(path, data_yaml(path, spec, class_names)), spec.names)
        self.folder = path
        self.names = names  # each input's name under DIR/images (its name in its folder)
        self.taken: set[str] = set()

    def write(self, result: ImageResult) -> None:
        """Add one image's label file and the image itself to the data set."""
        if not result.ok:
            return
        name = self._unique(self.names.get(result.path, os.path.basename(result.path)))
        link_or_copy(Path(result.path), self.folder / "images" / name)
        label = (self.folder / "labels" / name).with_suffix(".txt")
        lines = [label_line(p, result.width, result.height) for p in result.poses]
        files.make_parent(label)
        files.write_bytes_atomic(label, "".join(lines).encode())
        self.images += 1

    def _unique(self, name: str) -> str:
        """The name, or name_1, name_2...: no two images share a label file (x.jpg, x.png)."""
        path, n = Path(name), 0
        while (stem := str(path.with_suffix(""))) in self.taken:
            n += 1
            path = Path(name).with_stem(f"{Path(name).stem}_{n}")
        self.taken.add(stem)
        return str(path)

    def close(self) -> None:
        """Nothing is left to write (data.yaml went first)."""
        self.sink.commit()


def label_line(pose: Pose, width: int, height: int) -> str:
    """`class cx cy w h` then K x `x y v`, normalised to the image, clipped to it."""
    size = np.array([width, height], float)
    box = np.clip(pose.box.reshape(2, 2) / size, 0, 1)
    centre, extent = box.mean(axis=0), box[1] - box[0]
    values = [f"{v:.{DIGITS}f}" for v in (*centre, *extent)]
    for x, y, conf in pose.keypoints:
        point = np.array([x, y]) / size
        inside = bool(np.isfinite(point).all() and (point >= 0).all() and (point <= 1).all())
        v = 2 if conf >= VISIBLE else 1 if conf >= PRESENT else 0
        v = v if inside else 0
        px, py = point if v else (0.0, 0.0)
        values += [f"{px:.{DIGITS}f}", f"{py:.{DIGITS}f}", str(v)]
    return f"{pose.class_id or 0} {' '.join(values)}\n"


def data_yaml(path: Path, spec: KeypointSpec, class_names: tuple[str, ...]) -> str:
    """DIR/data.yaml: the folder, images for both train and val (split them yourself), the
    classes, kpt_shape [K, 3], flip_idx (if the spec has one), kpt_names, and posecli's
    skeleton and sigmas when the spec has them (Ultralytics ignores them)."""
    data: dict[str, object] = {
        "path": str(path.resolve()),
        "train": "images",
        "val": "images",
        "names": dict(enumerate(class_names)),
        "kpt_shape": [spec.count, 3],
    }
    if spec.flip_idx is not None:
        data["flip_idx"] = list(spec.flip_idx)
    data["kpt_names"] = {i: list(spec.names) for i in range(len(class_names))}
    if spec.skeleton:
        data["skeleton"] = [list(pair) for pair in spec.skeleton]
    if spec.sigmas is not None:
        data["sigmas"] = [float(s) for s in spec.sigmas]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)


def link_or_copy(source: Path, dest: Path) -> None:
    """Put the image at dest: a hard link, else (another file system, no links) a copy; the
    image itself (a run over DIR/images) is left as it is."""
    if files.identity(dest) is not None and files.identity(dest) == files.identity(source):
        return
    files.make_parent(dest)
    tmp = dest.with_name(f".{dest.name}.part")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise files.output_error(dest, exc) from exc
