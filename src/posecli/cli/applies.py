"""The one rule for options that would change nothing: given on the command line in a run
where they cannot act, they are a usage error that says why, rather than ignored."""

from __future__ import annotations

import click
from click.core import ParameterSource

from posecli.media.sources import Item
from posecli.media.video import camera_device, is_url

# What each fact of a run is called in the messages.
FACTS = {
    "sequence": "--sequence",
    "smooth": "--smooth",
    "box_only": "--box-only",
    "save_dir": "--save-dir",
    "video": "a video source",
    "remote": "a camera or URL source",
    "live": "a camera or stream source",
    "boxes_only": "-f mot and no --save-dir (boxes only)",
    "tracked": "track (its labels are IDs)",
}
# The fact that each option needs: without it, giving the option is a usage error.
TUNES = {"fps": "sequence", "smooth_beta": "smooth", "smooth_min_cutoff": "smooth",
         "kpt_conf": "save_dir", "line_width": "save_dir", "hide_boxes": "save_dir",
         "hide_labels": "save_dir", "hide_conf": "save_dir", "vid_stride": "video",
         "timeout": "remote", "every_frame": "live"}  # fmt: skip
# The fact that makes each option moot: with it, giving the option is a usage error.
MOOTS = {"keypoint_weight": "box_only", "smooth": "boxes_only", "hide_conf": "tracked"}


def refuse_untuned(facts: dict[str, bool]) -> None:
    """A usage error for an option given on the command line without the fact it needs, or
    with one that makes it moot (`facts` says which hold; options of other facts are not
    checked here): it would be ignored without a word."""
    source = click.get_current_context().get_parameter_source
    for rules, needed, says in ((TUNES, False, "applies only"), (MOOTS, True, "does not apply")):
        for option, fact in rules.items():
            given = source(option) is ParameterSource.COMMANDLINE
            if given and fact in facts and facts[fact] is needed:
                raise click.UsageError(f"--{option.replace('_', '-')} {says} with {FACTS[fact]}")


def source_facts(items: list[Item], sources: list[str]) -> dict[str, bool]:
    """What the sources are: videos, cameras or URLs, cameras or streams (`sources` are those
    that could not be expanded, taken by name)."""
    paths = [(i.path, i.is_video) for i in items] + [(p, Item(p, p).is_video) for p in sources]
    remote = [(path, is_video) for path, is_video in paths if camera_device(path) or is_url(path)]
    return {"video": any(v for _, v in paths), "remote": bool(remote),
            "live": any(v for _, v in remote)}  # fmt: skip
