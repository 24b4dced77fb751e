"""Hardware cost without vendor tools: Yosys synthesis (:mod:`.yosys`), cell libraries (:mod:`.libs`), tables,
timing (ECP5 place and route: :mod:`.nextpnr`; ASIC delay from ABC: :mod:`.asic_timing`).

``cost_rtl(rtl_dir)`` costs a generated design folder; ``table_cost(dataset)`` the lookup table a network replaces.
"""

from flow.cost.tables import table_cost
from flow.cost.yosys import cost_rtl

__all__ = ["cost_rtl", "table_cost"]
