"""One job of a multirun sweep: skip it when its outputs are complete, record why it was
skipped (incompatible triple) or failed (any error), never stop the other jobs."""
from __future__ import annotations

import traceback
from pathlib import Path

from pnp.errors import PnPError
from pnp.io import save_json


def run_job(cfg, outdir: Path) -> None:
    from pnp.runner import run

    status = outdir / "status.json"
    try:
        run(cfg, outdir, progress=False)
        save_json({"status": "done"}, status)
    except PnPError as err:
        kind = "skipped" if str(err).startswith("incompatible") else "failed"
        save_json({"status": kind, "reason": str(err)}, status)
    except Exception as err:  # a bug in one prior must not stop the sweep
        save_json({"status": "failed", "reason": f"{type(err).__name__}: {err}",
                   "traceback": traceback.format_exc()}, status)
