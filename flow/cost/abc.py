"""The ABC scripts of the ASIC flows: Yosys 0.23's defaults (``help abc``) with the SAT sweep bounded.

``&fraig -x`` may spend 10^6 SAT conflicts on each node; on the XOR-heavy logic of adder graphs that runs for hours
(a 195-adder layer of the jet-shaped model: over 120 s for ``&fraig`` alone, 6.7 s at 100 conflicts per node, the
mapped area within 1 %). Everything else is Yosys' default; ``{D}`` is Yosys' delay target (``abc -D``).
"""

from __future__ import annotations

SWEEP_CONFLICTS = 100  # per node: hard equivalences are left unmerged rather than proved
_SWEEP = f"strash; &get -n; &fraig -x -C {SWEEP_CONFLICTS}; &put; scorr; dc2; dretime; strash"
LIBERTY = f"{_SWEEP}; &get -n; &dch -f; &nf {{D}}; &put"  # abc -liberty
LIBERTY_TIMED = f"{LIBERTY}; buffer; upsize {{D}}; dnsize {{D}}; stime -p"  # abc -liberty -constr
GATES = f"{_SWEEP}; dch -f; map"  # abc -g


def script_arg(commands: str) -> str:
    """``commands`` as the argument of Yosys' ``abc -script`` (a leading ``+``, blanks written as commas)."""
    return "+" + commands.replace(" ", ",")
