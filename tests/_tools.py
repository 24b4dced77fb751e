"""Which external tools this machine has, for skip markers shared by the tests."""

from __future__ import annotations

from flow.errors import FlowError


def have(tool: str) -> bool:
    """Whether :func:`flow.tools.find_tool` finds ``tool``."""
    from flow.tools import find_tool

    try:
        find_tool(tool)
    except FlowError:
        return False
    return True
