"""The module framework (seed §4.1): BaseDetector, ModuleRegistry, PipelineRunner, AlertRouter."""

from jobs.framework.detector import BaseDetector, DetectorResult
from jobs.framework.registry import ModuleNotImplementedError, ModuleRegistry

__all__ = ["BaseDetector", "DetectorResult", "ModuleNotImplementedError", "ModuleRegistry"]
