"""posecli: multi-person pose estimation with ST's int8 YOLOv8n-pose TFLite models."""

from importlib.metadata import version

from .errors import ImageError, ModelError, PoseCliError
from .estimator import PoseEstimator
from .pose import KEYPOINT_NAMES, ImageResult, Pose

__version__ = version("posecli")
__all__ = [
    "KEYPOINT_NAMES",
    "ImageError",
    "ImageResult",
    "ModelError",
    "Pose",
    "PoseCliError",
    "PoseEstimator",
    "__version__",
]
