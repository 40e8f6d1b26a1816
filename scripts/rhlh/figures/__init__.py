"""Figures, one module per stage; rule scripts read their inputs, call these and save.

The shared conventions live here: the Agg backend and the colour-blind-safe palette.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

# Okabe-Ito colours: responders blue, non-responders vermillion, unknown grey
RESPONSE_COLORS = {"responder": "#0072B2", "non-responder": "#D55E00", "unknown": "#999999"}
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
