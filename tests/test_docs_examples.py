"""Every shell and Python example in README.md and docs/*.md, run as written.

Each fenced ```sh, ```bash, ```shell, ```console or ```python block is one test, named by its
file and line. It runs in a fresh folder (`work/`) laid out so that the examples' natural names
exist, with `../shared` beside it as beside a clone:

    work/bus.jpg, zidane.jpg, photo.jpg      the shared sample photos (copies; photo.jpg is bus)
    work/photos/                             bus.jpg and zidane.jpg
    work/clip.mp4                            CLIP_FRAMES frames of PETS, H.264
    work/frames/                             its first SEQUENCE_FRAMES frames as numbered JPEGs
    work/val2017/, person_keypoints_val2017.json   COCO_PHOTOS dev photos and their annotations
    work/hands.tflite, hand-keypoints.yaml   a 21-keypoint stand-in (ST's 256 model, rows repeated)
    work/val/, hands_val.json                the COCO photos, annotations in those 21 keypoints
    shared/                                  a small ../shared: images, models (the real ones),
                                             coco (the photos above), videos/pets-vtest.avi
                                             (its first CLIP_FRAMES frames)

So the examples run on the shared files, cut short to keep this test fast. Shell blocks run
under `bash -euo pipefail` with the venv's bin first on PATH; a `console` block runs its
`$ ` lines and skips the output lines. Python blocks run with this interpreter. The models
come from `POSECLI_MODELS`, set by conftest; `XDG_CACHE_HOME` is a folder of this session, so
that `models pull` examples do not touch the user's cache.

A block that cannot run here (a camera, a network stream, a board, an install from the
network) is preceded by `<!-- norun: REASON -->`, and the reason is required.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
import yaml

from conftest import (
    BUS,
    COCO_ANNOTATIONS,
    COCO_IMAGES,
    DEFAULT_MODEL,
    MODELS,
    ROOT,
    SHARED,
    ZIDANE,
)
from derived_models import gather_rows, keypoint_rows

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"sh", "bash", "shell", "console"}
RUNNABLE = SHELLS | {"python"}
FENCE = re.compile(r"^(```+|~~~+)\s*(\S*)\s*(.*)$")
NORUN = re.compile(r"^<!--\s*norun:(.*?)-->$")
TOOLS = ("jq", "parallel", "curl")  # programs an example may need besides posecli and bash
README_LINES = 250
TIMEOUT = 300  # seconds for one block

PETS = SHARED / "videos" / "pets-vtest.avi"
CLIP_START, CLIP_FRAMES = 535, 15  # 1.5 s of PETS at 10 fps, where 3 or 4 people cross
SEQUENCE_FRAMES = 6
COCO_PHOTOS = 8
# The hands stand-in: 21 keypoints, the 17 then nose, left shoulder, right shoulder, left wrist.
HAND_ROWS = [*range(17), 0, 5, 6, 9]
HAND_NAMES = [f"joint_{i}" for i in range(21)]
HAND_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 17, 19, 18, 20]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    info: str  # the info string after the language
    code: str
    norun: str | None  # the reason given, or None for a block that runs

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, each with the norun comment before it."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence, language, info = match.groups()
        end = index + 1
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        before = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
        norun = NORUN.match(before)
        code = "\n".join(lines[index + 1 : end]) + "\n"
        reason = norun.group(1).strip() if norun else None
        found.append(Block(page, index + 1, language.lower(), info, code, reason))
        index = end + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
RUN = [b for b in ALL_BLOCKS if b.language in RUNNABLE and b.norun is None]


def shell_script(block: Block) -> str:
    """The commands of a shell block: a console block's `$ ` lines (and their continuations)."""
    if block.language != "console":
        return "\n".join(re.sub(r"^\$ ", "", line) for line in block.code.splitlines()) + "\n"
    commands, continued = [], False
    for line in block.code.splitlines():
        if line.startswith("$ ") or continued:
            command = line[2:] if line.startswith("$ ") and not continued else line
            commands.append(command)
            continued = command.rstrip().endswith("\\")
    return "\n".join(commands) + "\n"


def cut_pets(dest: Path, frames: int, codec: str | None, start: int = 0) -> None:
    """`frames` frames of PETS from `start`: re-encoded with `codec`, or the first packets
    copied."""
    with av.open(str(PETS)) as source, av.open(str(dest), "w") as out:
        video = source.streams.video[0]
        if codec is None:
            stream = out.add_stream_from_template(video)
            for index, packet in enumerate(source.demux(video)):
                if index == frames or packet.dts is None:
                    break
                packet.stream = stream
                out.mux(packet)
            return
        stream = out.add_stream(codec, rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        for index, frame in enumerate(source.decode(video)):
            if index == start + frames:
                break
            if index < start:
                continue
            bgr = frame.to_ndarray(format="bgr24")
            out.mux(stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")))
        out.mux(stream.encode(None))


def coco_subset(annotations: dict, count: int) -> dict:
    """The first `count` photos (by name) with a person's keypoints, and all their annotations."""
    with_keypoints = {a["image_id"] for a in annotations["annotations"] if a["num_keypoints"]}
    images = sorted(
        (i for i in annotations["images"] if i["id"] in with_keypoints),
        key=lambda i: i["file_name"],
    )[:count]
    ids = {i["id"] for i in images}
    return {
        **annotations,
        "images": images,
        "annotations": [a for a in annotations["annotations"] if a["image_id"] in ids],
    }


def as_hands(annotations: dict) -> dict:
    """COCO person annotations with their keypoints in the stand-in's 21-keypoint order."""
    category = {**annotations["categories"][0], "keypoints": HAND_NAMES, "skeleton": []}
    converted = []
    for annotation in annotations["annotations"]:
        kpts = annotation["keypoints"]
        values = [v for k in HAND_ROWS for v in kpts[3 * k : 3 * k + 3]]
        visible = sum(1 for v in values[2::3] if v > 0)
        converted.append({**annotation, "keypoints": values, "num_keypoints": visible})
    return {**annotations, "categories": [category], "annotations": converted}


@pytest.fixture(scope="session")
def materials(tmp_path_factory) -> Path:
    """What every example's folder is made from, built once: see the module's docstring."""
    root = tmp_path_factory.mktemp("docs-examples")
    shared = root / "shared"
    (shared / "images").mkdir(parents=True)
    for photo in (BUS, ZIDANE):
        shutil.copy(photo, shared / "images")
    (shared / "models").symlink_to(MODELS)
    (shared / "videos").mkdir()
    cut_pets(shared / "videos" / "pets-vtest.avi", CLIP_FRAMES, None)
    coco = shared / "coco"
    (coco / "val2017").mkdir(parents=True)
    subset = coco_subset(json.loads(COCO_ANNOTATIONS.read_text()), COCO_PHOTOS)
    (coco / COCO_ANNOTATIONS.name).write_text(json.dumps(subset))
    for image in subset["images"]:
        shutil.copy(COCO_IMAGES / image["file_name"], coco / "val2017")

    cut_pets(root / "clip.mp4", CLIP_FRAMES, "libx264", CLIP_START)
    frames = root / "frames"
    frames.mkdir()
    with av.open(str(root / "clip.mp4")) as clip:
        for index, frame in enumerate(clip.decode(video=0)):
            if index == SEQUENCE_FRAMES:
                break
            frame.to_image().save(frames / f"{index + 1:06d}.jpg", quality=90)

    gather_rows(DEFAULT_MODEL, root / "hands.tflite", keypoint_rows(HAND_ROWS))
    spec = {
        "path": "hand-keypoints",
        "train": "images/train",
        "val": "images/val",
        "kpt_shape": [21, 3],
        "flip_idx": HAND_FLIP,
        "names": {0: "hand"},
        "kpt_names": {0: HAND_NAMES},
    }
    (root / "hand-keypoints.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (root / "hands_val.json").write_text(json.dumps(as_hands(subset)))
    (root / "cache").mkdir()
    return root


@pytest.fixture
def workdir(tmp_path, materials) -> Path:
    """A fresh folder for one example, with ../shared beside it."""
    work = tmp_path / "work"
    (work / "photos").mkdir(parents=True)
    (tmp_path / "shared").symlink_to(materials / "shared")
    for photo in (BUS, ZIDANE):
        shutil.copy(photo, work)
        shutil.copy(photo, work / "photos")
    shutil.copy(BUS, work / "photo.jpg")
    coco = materials / "shared" / "coco"
    links = {
        "clip.mp4": materials / "clip.mp4",
        "frames": materials / "frames",
        "val2017": coco / "val2017",
        "val": coco / "val2017",
        "person_keypoints_val2017.json": coco / COCO_ANNOTATIONS.name,
        "hands.tflite": materials / "hands.tflite",
        "hand-keypoints.yaml": materials / "hand-keypoints.yaml",
        "hands_val.json": materials / "hands_val.json",
    }
    for name, target in links.items():
        (work / name).symlink_to(target)
    return work


def missing_tool(code: str) -> str | None:
    """A program the example runs that is not installed (they are optional for CI)."""
    for tool in TOOLS:
        used = re.search(rf"(^|[|;&(]\s*|\$\(\s*){tool}\b", code, re.MULTILINE)
        if used and shutil.which(tool) is None:
            return tool
    return None


@pytest.mark.parametrize("block", RUN, ids=[b.name for b in RUN])
def test_example_runs(block: Block, workdir: Path, materials: Path):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_CACHE_HOME": str(materials / "cache"),
    }
    if block.language == "python":
        script = workdir / "docs_example.py"
        script.write_text(block.code)
        command = [sys.executable, str(script)]
    else:
        code = shell_script(block)
        tool = missing_tool(code)
        if tool:
            pytest.skip(f"{tool} is not installed")
        command = ["bash", "-e", "-u", "-o", "pipefail", "-c", code]
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 0, (
        f"{block.name}: exit status {proc.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{proc.stdout.decode(errors='replace')[-3000:]}"
        f"--- stderr\n{proc.stderr.decode(errors='replace')[-3000:]}"
    )


def test_every_norun_says_why_and_marks_a_runnable_block():
    for page in PAGES:
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if "norun" not in line.lower():
                continue
            match = NORUN.match(line.strip())
            assert match, f"{page.name}:{number}: write a norun as <!-- norun: REASON -->"
            assert len(match.group(1).split()) >= 3, f"{page.name}:{number}: say why it cannot run"
            block = next((b for b in blocks(page) if b.line > number), None)
            assert block and block.norun is not None and block.language in RUNNABLE, (
                f"{page.name}:{number}: a norun comment goes just before a shell or Python block"
            )


def test_fences_name_their_language():
    """A block without a language would never run; info strings carry nothing else."""
    for block in ALL_BLOCKS:
        assert block.language, f"{block.name}: give the block a language (text for output)"
        assert not block.info, f"{block.name}: only a language after the fence: {block.info!r}"


def test_python_examples_import_only_the_top_level_package():
    """Internal modules move; examples use `from posecli import ...` (Ray Data's PoseBatch is
    the one name that lives only in its module)."""
    allowed = {"posecli.run.ray_engine"}
    for block in ALL_BLOCKS:
        if block.language == "python":
            used = set(re.findall(r"\b(posecli(?:\.\w+)+)", block.code))
            assert used <= allowed, f"{block.name}: imports {sorted(used - allowed)}"


def test_readme_is_a_map_of_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_LINES
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
    assert "](docs/serve.png)" in readme


def test_readme_test_command_is_the_last_line_of_ci_run():
    """The README's command that sets up and runs the tests is what CI runs (CI adds pip's -q,
    to keep its log short)."""
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    shell_lines = [line for b in blocks(ROOT / "README.md") for line in b.code.splitlines()]
    assert command.replace("pip install -q ", "pip install ") in shell_lines


def test_relative_links_lead_to_files_and_headings():
    """Every relative link of README.md and docs/ names a file that exists, and a heading
    of it when it has an anchor (GitHub's slugs: lower case, punctuation dropped)."""
    link = re.compile(r"\]\(([^)\s]+)\)")
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
        for target in link.findall(text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name}: {target} does not exist"
            if anchor:
                assert anchor in slugs(dest), f"{page.name}: no heading #{anchor} in {dest.name}"


def slugs(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found
