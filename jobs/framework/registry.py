"""ModuleRegistry: which detector classes exist and which ones the configured tier runs."""

from __future__ import annotations

import importlib

from coattail.settings import ConfigError, Settings
from jobs.framework.detector import REGISTRY, BaseDetector

BUILTIN_PACKAGES = ("jobs.detectors",)  # importing these registers the built-in detectors


class ModuleNotImplementedError(ConfigError):
    """The tier activates a module that has no detector class (yet)."""


class ModuleRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        for package in BUILTIN_PACKAGES:
            importlib.import_module(package)

    @staticmethod
    def known() -> dict[str, type[BaseDetector]]:
        return dict(sorted(REGISTRY.items()))

    def detector_class(self, module_id: str) -> type[BaseDetector]:
        spec = self.settings.modules.get(module_id)
        if spec is None:
            raise ConfigError(f"{module_id} is not in config/features.yaml `modules`; add an entry for it")
        cls = REGISTRY.get(module_id)
        if cls is None:
            ready = sorted(m for m in self.settings.modules if m in REGISTRY)
            hint = (
                "use tier small" if set(ready) >= {"MOD-001", "MOD-002", "MOD-003"} else "choose another tier"
            )
            raise ModuleNotImplementedError(f"{module_id} ({spec.name}) is not implemented yet; {hint}")
        return cls

    def detectors(self, module_ids: list[str] | None = None) -> list[BaseDetector]:
        """Configured instances of exactly the active modules (or ``module_ids``), in config order."""
        classes = [self.detector_class(m) for m in (module_ids or self.settings.active_modules)]
        out = []
        for cls in classes:
            detector = cls()
            detector.configure(self.settings)
            out.append(detector)
        return out
