"""The C-simulation cache: keyed by exactly the sources that are compiled, never by the stamp or the output."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow import csim_cache
from flow.errors import FlowError

SCRIPT = """#!/bin/bash
PROJECT=myproject
LIB_STAMP={stamp}
BASEDIR="$(cd "$(dirname "$0")" && pwd)"
WEIGHTS_DIR="\\"${{BASEDIR}}/firmware/weights\\""
g++ -D WEIGHTS_DIR="${{WEIGHTS_DIR}}" -c firmware/${{PROJECT}}.cpp
"""


def _project(root: Path, *, stamp: str = "aaaa", weight: str = "1,2,3") -> Path:
    (root / "firmware" / "weights").mkdir(parents=True)
    (root / "build_lib.sh").write_text(SCRIPT.format(stamp=stamp))
    (root / "myproject_bridge.cpp").write_text("// bridge\n")
    (root / "firmware" / "myproject.cpp").write_text("// top\n")
    (root / "firmware" / "weights" / "w2.h").write_text(f"w2[3] = {{{weight}}};\n")
    (root / "firmware" / "weights" / "w2.txt").write_text(weight)
    (root / "firmware" / f"myproject-{stamp}.so").write_bytes(b"built")
    return root


def test_digest_ignores_the_stamp_the_folder_and_built_files(tmp_path):
    a = csim_cache.source_digest(_project(tmp_path / "a", stamp="aaaa"))
    b = csim_cache.source_digest(_project(tmp_path / "b", stamp="bbbb"))
    assert a == b


def test_digest_changes_with_a_compiled_source(tmp_path):
    """Known-wrong: a project with other weights must not get the cached library."""
    a = csim_cache.source_digest(_project(tmp_path / "a"))
    b = csim_cache.source_digest(_project(tmp_path / "b", weight="1,2,4"))
    assert a != b


def test_build_script_reads_weights_relative_to_the_working_directory(tmp_path):
    script = csim_cache.build_script(_project(tmp_path / "a"))
    assert "WEIGHTS_DIR='\"weights\"'" in script and "BASEDIR}/firmware/weights" not in script


def test_unknown_build_script_is_one_line(tmp_path):
    root = _project(tmp_path / "a")
    (root / "build_lib.sh").write_text("#!/bin/bash\ng++ -c x.cpp\n")
    with pytest.raises(FlowError, match="no WEIGHTS_DIR line"):
        csim_cache.build_script(root)
