"""Keypoint specs: the names, skeleton, left/right flip and OKS sigmas of a model's K keypoints."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from posecli.core.errors import ModelError, SpecError
from posecli.core.filekinds import not_regular_reason

BOX_ROWS = 5  # cx, cy, w, h, score; the K keypoints' values follow in a model's output
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
DEFAULT_LABEL = "person"  # what a model finds when its spec names no class
Color = tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class KeypointSpec:
    """What a model's K keypoints are.

    `skeleton` holds 0-based index pairs to draw, in the BGR `limb_colors` (else PALETTE's);
    `flip_idx[i]` is the keypoint that i becomes in a mirrored image; `sigmas` are OKS sigmas
    (None: Ultralytics' default 1/K each); `dims` is D from the spec's `kpt_shape`, if given;
    `label` names what the model finds (its one class), for box labels and summaries.
    """

    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    limb_colors: tuple[Color, ...] = ()
    flip_idx: tuple[int, ...] | None = None
    sigmas: np.ndarray | None = None
    dims: int | None = None
    source: str = "built-in"
    label: str = DEFAULT_LABEL

    @property
    def count(self) -> int:
        """K, the number of keypoints."""
        return len(self.names)

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """The (left, right) index pairs that swap in a mirrored image."""
        flip = self.flip_idx or ()
        return tuple((i, j) for i, j in enumerate(flip) if i < j)

    def oks_sigmas(self) -> np.ndarray:
        """OKS sigmas for evaluation: the spec's, else 1/K for every keypoint."""
        if self.sigmas is not None:
            return self.sigmas
        return np.full(self.count, 1.0 / self.count)

    def limbs(self) -> list[tuple[tuple[int, int], Color]]:
        """The skeleton's pairs, each with its colour."""
        colors = self.limb_colors or PALETTE
        return [(pair, colors[i % len(colors)]) for i, pair in enumerate(self.skeleton)]

    def describe(self) -> str:
        """One line for `models info`: where the spec comes from and what it holds."""
        parts = [_counted(self.count, "keypoint"), _counted(len(self.skeleton), "limb")]
        parts.append("flip pairs" if self.flip_idx else "no flip pairs")
        parts.append("OKS sigmas" if self.sigmas is not None else "default sigmas 1/K")
        parts.append(f"class {self.label!r}")
        return f"{self.source} ({', '.join(parts)})"


# COCO's limbs as 0-based pairs, coloured by body part (BGR).
_HEAD, _TORSO = (255, 180, 0), (0, 220, 255)
_LEFT_ARM, _RIGHT_ARM = (0, 140, 255), (255, 64, 192)
_LEFT_LEG, _RIGHT_LEG = (0, 200, 0), (255, 96, 64)
_COCO_LIMBS: tuple[tuple[int, int, Color], ...] = (
    (15, 13, _LEFT_LEG), (13, 11, _LEFT_LEG), (16, 14, _RIGHT_LEG), (14, 12, _RIGHT_LEG),
    (11, 12, _TORSO), (5, 11, _TORSO), (6, 12, _TORSO), (5, 6, _TORSO),
    (5, 7, _LEFT_ARM), (6, 8, _RIGHT_ARM), (7, 9, _LEFT_ARM), (8, 10, _RIGHT_ARM),
    (1, 2, _HEAD), (0, 1, _HEAD), (0, 2, _HEAD), (1, 3, _HEAD), (2, 4, _HEAD),
    (3, 5, _HEAD), (4, 6, _HEAD),
)  # fmt: skip
COCO17 = KeypointSpec(
    names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    skeleton=tuple((a, b) for a, b, _ in _COCO_LIMBS),
    limb_colors=tuple(color for _, _, color in _COCO_LIMBS),
    flip_idx=(0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15),
    sigmas=np.array([
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
    ]),
    dims=3,
    source="built-in COCO-17",
)  # fmt: skip
SpecArgument = str | os.PathLike | KeypointSpec | None
GENERIC_SOURCE = "none (generic names)"

# Limb colours for specs that bring a skeleton but no colours: cycled in skeleton order.
PALETTE: tuple[Color, ...] = (
    _HEAD, _TORSO, _LEFT_ARM, _RIGHT_ARM, _LEFT_LEG, _RIGHT_LEG, (180, 105, 255), (255, 255, 0),
)  # fmt: skip


def generic(count: int) -> KeypointSpec:
    """The spec for K keypoints that nothing describes: kp0..kp{K-1}, no skeleton."""
    return KeypointSpec(tuple(f"kp{i}" for i in range(count)), source=GENERIC_SOURCE)


def default_for(count: int) -> KeypointSpec:
    """The built-in spec for K keypoints: COCO-17 for 17, generic names otherwise."""
    return COCO17 if count == COCO17.count else generic(count)


def beside(model: Path) -> Path | None:
    """The spec file next to a model with the same stem (model.yaml, .yml or .json), if any."""
    return next((p for p in (model.with_suffix(s) for s in SPEC_SUFFIXES) if p.is_file()), None)


def load_spec(path: str | os.PathLike) -> KeypointSpec:
    """Read an Ultralytics dataset YAML or a posecli spec (YAML or JSON); SpecError if bad."""
    path = Path(path)
    reason = not_regular_reason(path)
    if reason:
        raise SpecError(f"{path}: cannot read keypoint spec ({reason})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(f"{path}: cannot read keypoint spec ({reason})") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(f"{path}: not valid {_syntax(path)} ({first})") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a keypoint spec must be a mapping of keys to values")
    try:
        return _parse(data, str(path))
    except _Invalid as exc:
        raise SpecError(f"{path}: {exc}") from None


class _Invalid(ValueError):
    """A spec field is wrong; load_spec adds the file name."""


def _syntax(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "YAML"


def _parse(data: dict, source: str) -> KeypointSpec:
    """Build and check a spec from its keys (see docs/custom-models.md)."""
    count, dims = _kpt_shape(data.get("kpt_shape"))
    names = _names(data)
    if names is None and count is None:
        raise _Invalid("gives neither kpt_shape nor keypoint names (kpt_names or keypoints)")
    if names is not None and count is not None and len(names) != count:
        raise _Invalid(f"kpt_shape says {count} keypoints but {len(names)} names are given")
    names = names or tuple(f"kp{i}" for i in range(count or 0))
    return KeypointSpec(
        names=names,
        skeleton=_skeleton(data.get("skeleton"), len(names)),
        flip_idx=_flip_idx(data.get("flip_idx"), len(names)),
        sigmas=_sigmas(data.get("sigmas"), len(names)),
        dims=dims,
        source=source,
        label=_class_name(data.get("names")),
    )


def _class_name(value: object) -> str:
    """The one class name of Ultralytics' `names` ({0: name} or [name]); DEFAULT_LABEL if absent."""
    if value is None:
        return DEFAULT_LABEL
    names = list(value.values()) if isinstance(value, dict) else value
    if not isinstance(names, list) or len(names) != 1:
        raise _Invalid(f"names must give one class (posecli reads one-class pose models), "
                       f"not {value!r}")  # fmt: skip
    if not isinstance(names[0], str) or not names[0].strip():
        raise _Invalid(f"the class name must be a non-empty string, not {names[0]!r}")
    return names[0].strip()


def _kpt_shape(value: object) -> tuple[int | None, int | None]:
    """(K, D) from Ultralytics' kpt_shape [K, D], or (None, None) when absent."""
    if value is None:
        return None, None
    if (
        not isinstance(value, list) or len(value) != 2
        or not all(_is_int(v) for v in value) or value[0] < 1 or value[1] not in (2, 3)
    ):  # fmt: skip
        raise _Invalid(f"kpt_shape must be [K, D] with K >= 1 and D 2 or 3, not {value!r}")
    return int(value[0]), int(value[1])


def _names(data: dict) -> tuple[str, ...] | None:
    """Keypoint names from `keypoints` (posecli) or `kpt_names` (Ultralytics, per class)."""
    value = data.get("keypoints", data.get("kpt_names"))
    if isinstance(value, dict):  # Ultralytics: {class index: [names]}, all classes alike
        value = value[min(value)] if value else None
    elif isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        value = value[0]
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _Invalid("keypoint names must be a non-empty list of strings")
    names = tuple(v.strip() for v in value)
    if any(not n for n in names) or len(set(names)) != len(names):
        raise _Invalid("keypoint names must be unique and not empty")
    return names


def _skeleton(value: object, count: int) -> tuple[tuple[int, int], ...]:
    """0-based keypoint index pairs, each in range."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(_is_int(i) for i in p) for p in value
    ):
        raise _Invalid("skeleton must be a list of [i, j] keypoint index pairs")
    bad = next((p for p in value if not all(0 <= i < count for i in p)), None)
    if bad is not None:
        raise _Invalid(f"skeleton pair {bad} is out of range for {count} keypoints (0-based)")
    return tuple((int(a), int(b)) for a, b in value)


def _flip_idx(value: object, count: int) -> tuple[int, ...] | None:
    """A permutation of 0..K-1, or None."""
    if value is None:
        return None
    if (
        not isinstance(value, list) or not all(_is_int(i) for i in value)
        or sorted(value) != list(range(count))
    ):  # fmt: skip
        raise _Invalid(f"flip_idx must be a permutation of 0..{count - 1}")
    return tuple(int(i) for i in value)


def _sigmas(value: object, count: int) -> np.ndarray | None:
    """K positive OKS sigmas, or None."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != count:
        raise _Invalid(f"sigmas must be a list of {count} numbers, one per keypoint")
    sigmas = np.array(value, dtype=object)
    if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in sigmas):
        raise _Invalid("sigmas must be numbers")
    sigmas = sigmas.astype(np.float64)
    if not (np.isfinite(sigmas) & (sigmas > 0)).all():
        raise _Invalid("sigmas must be finite and positive")
    return sigmas


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def layout(rows: int, spec: KeypointSpec | None, path: Path) -> tuple[int, int]:
    """(K, D) for an output of 5 + K*D rows: D = 3 if it divides, else 2; a spec settles it."""
    values = rows - BOX_ROWS
    if spec is None:
        dims = next((d for d in (3, 2) if values > 0 and values % d == 0), None)
        if dims is None:
            raise ModelError(
                f"{path}: output has {rows} rows, which is not the pose layout 5 + K x 3 or "
                "5 + K x 2 (box, score, K keypoints); is this a detection or another model?"
            )
        return values // dims, dims
    options = (spec.dims,) if spec.dims else (3, 2)
    dims = next((d for d in options if spec.count * d == values), None)
    if dims is None:
        per = f"x {spec.dims}" if spec.dims else "x 2 or 3"
        raise SpecError(
            f"{spec.source}: the spec has {spec.count} keypoints {per} values, but {path} "
            f"outputs 5 + {values} rows"
        )
    return spec.count, dims


def for_model(
    model: Path, rows: int, spec: SpecArgument, fallback: KeypointSpec | None = None
) -> tuple[KeypointSpec, int]:
    """The spec for a model with `rows` (5 + K*D) output rows, and D: see `given_or_beside` and
    `layout`; `fallback` (the file's metadata) comes before the built-in specs."""
    given = given_or_beside(model, spec) or fallback
    count, dims = layout(rows, given, model)
    return given or default_for(count), dims


def from_metadata(metadata: dict, source: str) -> KeypointSpec | None:
    """The spec a model file's Ultralytics metadata gives (kpt_shape, kpt_names), if any: COCO-17
    for 17 keypoints with COCO's names or none."""
    if "kpt_shape" not in metadata:
        return None
    shape = metadata["kpt_shape"]
    data = {"kpt_shape": list(shape) if isinstance(shape, tuple) else shape,
            "kpt_names": metadata.get("kpt_names")}  # fmt: skip
    try:
        spec = _parse(data, source)
    except _Invalid as exc:
        raise ModelError(f"{source}: {exc}") from None
    if spec.count == COCO17.count and (spec.names == COCO17.names or not data["kpt_names"]):
        return replace(COCO17, dims=spec.dims, source=f"{source} (COCO-17)")
    return spec


def given_or_beside(model: Path, spec: SpecArgument) -> KeypointSpec | None:
    """The spec given (a file or a KeypointSpec), else the one beside the model, else None."""
    if isinstance(spec, KeypointSpec):
        return checked(spec)
    path = Path(spec) if spec is not None else beside(model)
    return load_spec(path) if path is not None else None


def checked(spec: KeypointSpec) -> KeypointSpec:
    """A KeypointSpec built in code, held to the rules of a spec file (SpecError if not)."""
    data = {
        "keypoints": list(spec.names),
        "skeleton": [list(pair) for pair in spec.skeleton],
        "flip_idx": None if spec.flip_idx is None else list(spec.flip_idx),
        "sigmas": None if spec.sigmas is None else [float(s) for s in spec.sigmas],
        "kpt_shape": None if spec.dims is None else [spec.count, spec.dims],
    }
    try:
        _parse(data, spec.source)
    except _Invalid as exc:
        raise SpecError(f"KeypointSpec ({spec.source}): {exc}") from None
    return spec


def _counted(n: int, noun: str) -> str:
    """'1 keypoint', '3 keypoints'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
