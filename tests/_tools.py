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


def use_own_cache(tmp_path, monkeypatch) -> None:
    """Cost results go to a fresh cache under ``tmp_path``; the fetched libraries stay where `make setup` put them."""
    from flow.cost import libs

    real_libs = libs.libs_dir()
    monkeypatch.setenv("QFLOW_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    if real_libs.is_dir():
        (tmp_path / "cache" / "libs").symlink_to(real_libs)
