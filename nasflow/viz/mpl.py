"""matplotlib, imported lazily with the non-interactive Agg backend, and the shared look."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasflow.errors import NasflowError
from nasflow.runs.durable import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'nasflow[plot]'"


class MissingExtraError(NasflowError, ImportError):
    """An optional dependency a command needs is not installed."""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display needed)."""
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError(f"drawing figures needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure(**kwargs: Any) -> Figure:
    """A Figure outside pyplot's registry: nothing to close, nothing kept alive."""
    pyplot()
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def colors(n: int) -> list[Any]:
    """n distinguishable colours: tab10, then tab20's lighter halves (up to 20)."""
    plt = pyplot()
    base = list(plt.get_cmap("tab10").colors)
    if n <= len(base):
        return base[:n]
    extra = list(plt.get_cmap("tab20").colors)[1::2]
    return (base + extra)[:n] if n <= 20 else [plt.get_cmap("turbo")(i / max(n - 1, 1)) for i in range(n)]


# Line styles cycle with the colours, so lines stay apart in grey print and for colour-blind readers.
LINESTYLES = ["-", "--", "-.", ":"]


def save(fig: Figure, path: Path, svg: bool = True) -> list[Path]:
    """Write `fig` as PNG (and SVG beside it); returns the files written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path.with_suffix(".png")]
    # through a temporary name: a full disk names the file and leaves no partial image
    write_atomic(written[0], lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    if svg:
        written.append(path.with_suffix(".svg"))
        write_atomic(written[1], lambda tmp: fig.savefig(tmp, format="svg"))
    return written
