"""posecli: multi-person pose estimation with ST's int8 YOLOv8n-pose TFLite models."""

from importlib.metadata import version

from posecli.core.errors import ImageError, ModelError, PoseCliError, SpecError
from posecli.core.keypoints import COCO17, KeypointSpec, load_spec
from posecli.core.results import ImageResult, People, Pose
from posecli.estimator import PoseEstimator
from posecli.run.job import RunOptions, run_sources
from posecli.tracking.smoothing import KeypointSmoother
from posecli.tracking.tracker import PoseTracker, TrackerSettings

KEYPOINT_NAMES = COCO17.names  # COCO's 17, the built-in spec's names

__version__ = version("posecli")
__all__ = [
    "COCO17",
    "KEYPOINT_NAMES",
    "ImageError",
    "ImageResult",
    "KeypointSmoother",
    "KeypointSpec",
    "ModelError",
    "People",
    "Pose",
    "PoseCliError",
    "PoseEstimator",
    "PoseTracker",
    "RunOptions",
    "SpecError",
    "TrackerSettings",
    "__version__",
    "load_spec",
    "run_sources",
]
