"""Child process for ``flow.rtl.cmvm``: da4ml's CMVM solver on one integer matrix (JSON on stdin and stdout).

It first solves a 2 x 2 matrix so that numba's compilation (about a minute on a cold cache) is done before the
parent starts the budget, prints ``ready``, then reads the request ``{"weights", "lo", "hi"}`` (``lo``/``hi``: each
input's raw range) and prints the solution's stages (ops as ``[opcode, id0, id1, data]``).
"""

from __future__ import annotations

import json
import sys

import numpy as np


def _stages(pipeline) -> list[dict]:
    return [
        {
            "inp_shifts": [int(s) for s in sol.inp_shifts],
            "out_idxs": [int(i) for i in sol.out_idxs],
            "out_shifts": [int(s) for s in sol.out_shifts],
            "out_negs": [bool(n) for n in sol.out_negs],
            "ops": [[int(op.opcode), int(op.id0), int(op.id1), int(op.data)] for op in sol.ops],
        }
        for sol in pipeline.solutions
    ]


def main() -> None:
    from da4ml.cmvm import QInterval, solve

    solve(np.array([[1.0, 3.0], [5.0, -7.0]], dtype=np.float32), qintervals=[QInterval(-8.0, 7.0, 1.0)] * 2)
    print("ready", flush=True)
    req = json.loads(sys.stdin.read())
    w = np.asarray(req["weights"], dtype=np.float32)
    qs = [QInterval(float(lo), float(hi), 1.0) for lo, hi in zip(req["lo"], req["hi"])]
    pipeline = solve(w, qintervals=qs)
    print(json.dumps({"stages": _stages(pipeline)}), flush=True)


if __name__ == "__main__":
    main()
