"""The model manifest, the search path for model files, and pulling them with checksums."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from posecli.core.errors import ModelError
from posecli.core.filekinds import not_regular_reason
from posecli.core.files import identity, reason, write_bytes_atomic

ENV_MODELS = "POSECLI_MODELS"


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry: where a known model comes from and what it should be."""

    name: str
    file: str
    url: str
    sha256: str
    input_size: int
    quantization: str
    card_ap50: float | None


def load_manifest() -> tuple[str, dict[str, ModelSpec]]:
    """Return the default model name and every manifest entry by name."""
    data = json.loads(resources.files("posecli").joinpath("manifest.json").read_text())
    specs = {m["name"]: ModelSpec(**m) for m in data["models"]}
    return data["default"], specs


def cache_dir() -> Path:
    """The user cache that `models pull` fills: $XDG_CACHE_HOME/posecli/models."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "posecli" / "models"


def search_dirs() -> list[Path]:
    """Directories searched for a model named in the manifest, first match wins."""
    dirs = [Path(d) for d in os.environ.get(ENV_MODELS, "").split(os.pathsep) if d]
    return [*dirs, cache_dir()]


def find_file(spec: ModelSpec) -> Path | None:
    """The first copy of a manifest model on the search path, or None."""
    return next((d / spec.file for d in search_dirs() if (d / spec.file).is_file()), None)


def verify(spec: ModelSpec, path: Path) -> None:
    """Refuse a file whose sha256 differs from the manifest's."""
    check_digest(spec, read_model(path), path)


def read_model(path: Path) -> bytes:
    """A model file's bytes; a ModelError saying why when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model ({reason(exc)})") from exc


def check_digest(spec: ModelSpec, data: bytes, origin: object) -> None:
    """Refuse model bytes (from origin, a path or URL) whose sha256 is not the manifest's."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise ModelError(
            f"{origin}: sha256 {digest[:12]}... does not match the manifest's "
            f"{spec.sha256[:12]}... for {spec.name}; the file is damaged or another model"
        )


def model_for_size(imgsz: int) -> str:
    """Name of the yolov8n model with the given input size."""
    name = f"yolov8n-pose-{imgsz}"
    if name not in load_manifest()[1]:
        raise ModelError(f"no yolov8n model for --imgsz {imgsz} (choose 192, 256 or 320)")
    return name


def resolve(model: str | os.PathLike | None) -> tuple[Path, ModelSpec | None]:
    """Turn a model name or path into a verified file on disk and its manifest entry."""
    default, specs = load_manifest()
    model = default if model is None else model
    spec = specs.get(str(model))
    if spec is None:
        path = Path(model)
        why = not_regular_reason(path)
        if why == "no such file":
            known = ", ".join(specs)
            raise ModelError(f"{path}: no such model file, and not a known model name ({known})")
        if why:
            raise ModelError(f"{path}: {why}, not a model file")
        read_model(path)
        return path, None
    found = find_file(spec)
    if found is None:
        raise ModelError(
            f"model {spec.name} is not installed; run `posecli models pull {spec.name}` "
            f"(or `--from DIR` offline), or point ${ENV_MODELS} at a folder holding {spec.file}"
        )
    verify(spec, found)
    return found, spec


def pull(spec: ModelSpec, source_dir: Path | None = None, dest_dir: Path | None = None) -> Path:
    """Copy a model from source_dir (or download it), verify its sha256, and install it."""
    data = _fetch(spec, source_dir)
    check_digest(spec, data, source_dir / spec.file if source_dir else spec.url)
    final = (dest_dir or cache_dir()) / spec.file
    if source_dir is None or identity(final) != identity(source_dir / spec.file):
        write_bytes_atomic(final, data)  # (a folder pulled into itself is left as it is)
    return final


def _fetch(spec: ModelSpec, source_dir: Path | None) -> bytes:
    """The model's bytes from a local folder or its upstream URL."""
    if source_dir is not None:
        src = source_dir / spec.file
        why = not_regular_reason(src)
        if why:
            raise ModelError(f"{src}: cannot pull {spec.name} from it: {why}")
        return read_model(src)
    try:
        with urllib.request.urlopen(spec.url, timeout=60) as response:
            return response.read()
    except OSError as exc:
        raise ModelError(
            f"{spec.url}: download failed ({exc}); offline, use `posecli models pull --from DIR`"
        ) from exc
