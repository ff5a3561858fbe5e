"""The active modules as the API shows them: id, name, alert types and the module's own panel.

Everything comes from the modules themselves (their ``panel`` declaration, through the pipeline's
ModuleRegistry, which imports each module's ``code`` from config) and their config entry, so the API
names no module. A configured module without code yet gets a plain panel of its alert count.
"""

from __future__ import annotations

from dataclasses import dataclass

from coattail.panels import SymbolPanel
from coattail.settings import Settings


@dataclass(frozen=True)
class ModuleView:
    module_id: str
    name: str
    alert_types: tuple[str, ...]
    panel: SymbolPanel


def module_views(settings: Settings) -> list[ModuleView]:
    from jobs.framework.registry import ModuleRegistry  # Spark-free: detectors import Spark lazily

    panels = ModuleRegistry(settings).panels()
    return [
        ModuleView(
            module_id=module_id,
            name=settings.modules[module_id].name,
            alert_types=tuple(settings.modules[module_id].alert_types),
            panel=panels.get(module_id) or SymbolPanel(title=settings.modules[module_id].name),
        )
        for module_id in settings.active_modules
    ]
