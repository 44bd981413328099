"""posecli: multi-person pose estimation with ST's int8 YOLOv8n-pose TFLite models."""

from importlib.metadata import version

from .errors import ImageError, ModelError, PoseCliError, SpecError
from .estimator import PoseEstimator
from .keypoints import COCO17, KeypointSpec, load_spec
from .pose import ImageResult, Pose
from .smoothing import KeypointSmoother
from .tracker import PoseTracker, TrackerSettings

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
    "Pose",
    "PoseCliError",
    "PoseEstimator",
    "PoseTracker",
    "SpecError",
    "TrackerSettings",
    "__version__",
    "load_spec",
]
