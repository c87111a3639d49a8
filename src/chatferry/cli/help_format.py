"""``--help`` without a type beside plain flags.

Typer's rich help prints each option's type, and for a flag (``--wait``, ``--json``,
``--help`` itself) that is ``<bool>``, though a flag takes no value. A flag's type is
left out here; every other option keeps its own.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_typed_display = TyperOption.display_type_rich


def _display_type(self: TyperOption, ctx: Any) -> str | None:
    if self.is_flag and not self.count:
        return None
    return _typed_display(self, ctx)


def hide_flag_types() -> None:
    """Leaves the type out of every flag's line in the help (once per process)."""
    TyperOption.display_type_rich = _display_type  # type: ignore[method-assign]
