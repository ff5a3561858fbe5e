"""ModuleRegistry: which detector classes exist and which ones the configured tier runs.

A module's config entry names its Python module (``code``); importing it registers the detector
class. Nothing here lists modules: a new one is its own module plus its config entry.
"""

from __future__ import annotations

import importlib

from coattail.panels import SymbolPanel
from coattail.settings import ConfigError, Settings
from jobs.framework.detector import REGISTRY, BaseDetector


class ModuleNotImplementedError(ConfigError):
    """The tier activates a module that has no detector class (yet)."""


class ModuleRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        for module_id, spec in settings.modules.items():
            if spec.code:
                try:
                    importlib.import_module(spec.code)
                except ImportError as exc:
                    raise ConfigError(
                        f"{module_id} ({spec.name}): cannot import its code {spec.code!r} ({exc})"
                    ) from None

    @staticmethod
    def known() -> dict[str, type[BaseDetector]]:
        return dict(sorted(REGISTRY.items()))

    def detector_class(self, module_id: str) -> type[BaseDetector]:
        spec = self.settings.modules.get(module_id)
        if spec is None:
            raise ConfigError(f"{module_id} is not in config/features.yaml `modules`; add an entry for it")
        cls = REGISTRY.get(module_id)
        if cls is None and spec.code:
            raise ConfigError(
                f"{module_id} ({spec.name}): {spec.code} defines no detector with that module id"
            )
        if cls is None:
            raise ModuleNotImplementedError(
                f"{module_id} ({spec.name}) is not implemented yet; choose a tier without it"
            )
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

    def panels(self) -> dict[str, SymbolPanel]:
        """The dashboard panel each active, implemented module declares (for the API)."""
        return {m: REGISTRY[m].panel for m in self.settings.active_modules if m in REGISTRY}
