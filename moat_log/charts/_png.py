"""Panels as a PNG through matplotlib, the optional extra ``plots``.

Imported only when a ``.png`` is asked for: matplotlib takes about a second to
import on a Raspberry Pi, which no other command should pay.  The series are
cut into runs by the same `runs` as the SVG, so gaps and steps agree.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Sequence

from moat_log.errors import InvalidInputError

from ._model import Panel, runs, thinned, time_range, zone_name
from ._svg import PALETTE

#: What to install for PNG output.
PLOTS_EXTRA = "pip install 'moat-log[plots]'"


def write_png(
    panels: Sequence[Panel], file: pathlib.Path, *, title: str = "", tz: dt.tzinfo | None = None
) -> None:
    """Draw *panels* into the PNG *file* (times in *tz*, default local)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise InvalidInputError(
            f"{file}: writing a .png needs matplotlib ({PLOTS_EXTRA}); "
            "or write an .svg, which needs nothing"
        ) from exc
    zone = tz or dt.datetime.now().astimezone().tzinfo
    span = time_range(panels)
    figure, axes = plt.subplots(
        max(1, len(panels)),
        1,
        sharex=True,
        squeeze=False,
        figsize=(9.6, 0.4 + 2.2 * max(1, len(panels))),
    )
    try:
        for axis, panel in zip(axes[:, 0], panels, strict=False):
            axis.set_title(panel.title, loc="left", fontsize=10, fontweight="bold")
            axis.set_ylabel(panel.unit)
            axis.grid(True, color="#eee")
            for index, series in enumerate(panel.series):
                colour = PALETTE[index % len(PALETTE)]
                for number, whole in enumerate(runs(series, span[1] if span else 0.0)):
                    run = thinned(whole, *span, 2000) if span else whole
                    times = [dt.datetime.fromtimestamp(t, dt.UTC) for t, _ in run]
                    axis.plot(
                        times,
                        [v for _, v in run],
                        color=colour,
                        marker="." if len(run) == 1 else "",
                        label=series.name if number == 0 else None,
                    )
            if any(s.points for s in panel.series):
                axis.legend(loc="upper right", fontsize=8)
        last = axes[-1, 0]
        last.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=zone))  # type: ignore[no-untyped-call]
        if span is not None:
            last.set_xlabel(f"time, {zone_name(span[0], tz)}")
        if title:
            figure.suptitle(title)
        figure.autofmt_xdate()
        figure.savefig(file, format="png", dpi=100)
    finally:
        plt.close(figure)
