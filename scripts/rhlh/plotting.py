"""Shared figure conventions: colour-blind-safe palette, visit order."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

# Okabe-Ito colours: responders blue, non-responders vermillion, unknown grey
RESPONSE_COLORS = {"responder": "#0072B2", "non-responder": "#D55E00", "unknown": "#999999"}
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def response_label(flag) -> str:
    """Map a responder flag (True/False/None) to its legend label."""
    if flag is True or flag == "True":
        return "responder"
    if flag is False or flag == "False":
        return "non-responder"
    return "unknown"
