"""Exception types that the CLI turns into one-line messages and exit statuses."""


class PoseCliError(Exception):
    """Base class for every error posecli reports to the user."""


class ModelError(PoseCliError):
    """The model is missing, unreadable, of the wrong layout, or fails its checksum."""


class ImageError(PoseCliError):
    """One input image cannot be used; the batch goes on without it."""


class AnnotationError(PoseCliError):
    """An annotation or results file is not usable COCO keypoint data."""


class OutputError(PoseCliError):
    """An output (results file, annotated copy folder, model install) cannot be written."""


class SpecError(PoseCliError):
    """A keypoint spec file is missing, malformed, or disagrees with the model."""
