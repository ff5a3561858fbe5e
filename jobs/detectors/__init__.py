"""Built-in detector modules; importing this package registers them with the ModuleRegistry."""

from jobs.detectors.consensus import ConsensusDetector
from jobs.detectors.flow import FlowDirectionDetector
from jobs.detectors.spread import SpreadDetector
from jobs.detectors.volume import VolumeAnomalyDetector
from jobs.detectors.whale import WhaleDetector

__all__ = [
    "ConsensusDetector",
    "FlowDirectionDetector",
    "SpreadDetector",
    "VolumeAnomalyDetector",
    "WhaleDetector",
]
