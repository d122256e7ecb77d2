"""The report's inputs and outputs: what 02-report loads, and ``signal-noise render``.

``report_inputs`` reads a results store (or any tidy CSV/Parquet table), runs the analysis and
describes the setup. ``render`` turns the executed notebook into a self-contained HTML file (code
hidden, figures embedded, no script, stylesheet or font fetched from anywhere) and prints that HTML
to PDF with headless Chromium. Both files are written under temporary names and moved into place
only when both succeeded, so a failed build leaves the previous report untouched.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .analyze import ARMS, DEFAULT_PARAMS, Arm, analyze_table, read_table, validate
from .errors import UserError
from .paths import ROOT

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM_TIMEOUT_S = 180


# ---------------------------------------------------------------------------- inputs
@dataclass
class ReportInputs:
    """Everything the report shows: the tidy table, its pivoted arms, the analysis and the setup."""
    path: Path
    table: pd.DataFrame
    arms: dict[str, Arm]
    result: dict
    setup: dict


def resolve(path: str | os.PathLike) -> Path:
    """A path relative to the repository root (papermill runs the notebook elsewhere)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else ROOT / path


def report_inputs(store: str | os.PathLike, profile: str, params: tuple[str, ...] = DEFAULT_PARAMS) -> ReportInputs:
    """Load ``store`` (a results store or a tidy table), analyse it as ``signal-noise analyze`` does by
    default, and describe the setup it records."""
    path = resolve(store)
    if not path.exists():
        raise UserError(f"{path}: no such results store or table; run the sweeps first "
                        f"(make report PROFILE={profile}) or pass -p store PATH")
    table = read_table(path)
    result = analyze_table(table, params=params)
    return ReportInputs(path, table, validate(table, "acc", params), result, describe_setup(path, profile, table))


def _single(table: pd.DataFrame, column: str, arm: str | None = None):
    """The one value ``column`` takes (in ``arm``), or None when it is absent or varies."""
    if column not in table.columns:
        return None
    rows = table if arm is None else table[table["arm"].astype(str).str.lower() == arm]
    values = rows[column].dropna().unique()
    if len(values) != 1:
        return None
    return values[0].item() if isinstance(values[0], np.generic) else values[0]


def describe_setup(path: Path, profile: str, table: pd.DataFrame) -> dict:
    """What was run: profile, data sizes, runs per arm (planned, complete, failed, pending), failed runs
    with their reasons, seeds and the Noise config."""
    from . import grid, writeup
    from .store import Store

    try:
        shown = str(path.relative_to(ROOT))
    except ValueError:
        shown = str(path)
    arm_col = table["arm"].astype(str).str.lower()
    runs = table.drop_duplicates("run_id")
    runs_arm = runs["arm"].astype(str).str.lower()
    setup = {"source": shown, "kind": "table", "profile_param": profile, "profile_store": None,
             "counts": {a: {"complete": int((runs_arm == a).sum())} for a in ARMS}, "failed": [],
             "n_train": _single(table, "cfg_n_train"), "n_test": _single(table, "cfg_n_test"),
             "lr": _single(table, "cfg_lr")}
    if path.suffix.lower() in (".sqlite", ".db"):
        setup["kind"] = "store"
        with Store(path, create=False) as st:
            setup["profile_store"] = st.get_meta("profile")
            setup["counts"] = st.status_counts()
            setup["failed"] = [{"arm": r["arm"], "labels": {p: r.get(p) for p in DEFAULT_PARAMS},
                                "reason": r["reason"]} for r in st.runs(status="failed")]
    setup["n_failed"] = len(setup["failed"])
    name = setup["profile_store"] or (profile if setup["kind"] == "store" else None)
    known = grid.PROFILES.get(name) if name else None
    setup["profile"] = name
    setup["profile_summary"] = known.summary if known else None
    seeds = {a: sorted(pd.unique(runs.loc[runs_arm == a, "seed"])) if "seed" in runs else [] for a in ARMS}
    setup["signal_seeds"], setup["noise_seeds"] = len(seeds["signal"]), len(seeds["noise"])
    setup["signal_seed"] = int(seeds["signal"][0]) if len(seeds["signal"]) == 1 else None
    cfg = {p: _single(table, f"cfg_{p}", "noise") for p in DEFAULT_PARAMS}
    setup["noise_config"] = cfg if all(v is not None for v in cfg.values()) else None
    study = writeup.STUDY
    epochs = int(pd.to_numeric(table.loc[arm_col == "noise", "epoch"]).max())
    recorded = {"n_train": setup["n_train"], "n_test": setup["n_test"], "epochs": epochs,
                "signal_runs": setup["counts"]["signal"]["complete"], "noise_runs": setup["counts"]["noise"]["complete"]}
    # a tidy table may not record every size; judge it by the ones it does
    setup["is_study_size"] = all(v is None or v >= study[k] for k, v in recorded.items())
    return setup


# ---------------------------------------------------------------------------- HTML
# Extends nbconvert's lab template, dropping every block that loads code from a CDN (require.js,
# MathJax, Mermaid, widget managers) and adding print rules; the lab CSS is inlined by nbconvert.
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}
<style type="text/css">
body.jp-Notebook { max-width: 62rem; margin: 0 auto; padding: 1.5rem 2rem; }
.jp-RenderedHTMLCommon { font-size: 14px; line-height: 1.5; }
.jp-RenderedHTMLCommon table { font-size: 12px; margin: 0.6em 0; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { padding: 0.25em 0.5em; }
.jp-RenderedHTMLCommon img, .jp-RenderedImage img { max-width: 100%; height: auto; }
.banner { border-left: 5px solid #c2410c; background: #fff7ed; padding: 0.6em 1em; margin: 0.8em 0 1.2em; }
.banner p { margin: 0.3em 0; }
.warn { color: #9a3412; font-weight: 600; }
.ci { white-space: nowrap; }
.caption { font-size: 12.5px; color: #334155; margin: 0.2em 0 1.4em; }
.jp-OutputPrompt, .jp-InputPrompt { display: none; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body.jp-Notebook { max-width: none; padding: 0; }
  .jp-RenderedImage, img, tr, .banner, .caption { break-inside: avoid; }
  .jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output { break-inside: auto; }
  h1, h2, h3 { break-after: avoid; }
  .jp-OutputArea-output, .jp-RenderedHTMLCommon { overflow: visible !important; }
  .caption { break-before: avoid; }
}
</style>
{% endblock extra_css %}
"""

# a resource the browser would fetch by itself (links a reader may click are fine)
_FETCHES = re.compile(r"""<(?:script|img|link|iframe|source|video|audio|embed)\b[^>]*?\b(?:src|href)\s*=\s*"""
                      r"""["']?(?:https?:)?//"""
                      r"""|url\(\s*["']?(?:https?:)?//|@import\s+(?:url\()?\s*["']?(?:https?:)?//""", re.I)


_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S | re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def external_fetches(text: str) -> list[str]:
    """Snippets of ``text`` that would make a browser load something from the network."""
    return [text[m.start():m.start() + 120] for m in _FETCHES.finditer(text)]


def notebook_html(notebook: str | os.PathLike) -> str:
    """The executed notebook as one self-contained HTML page, code cells and prompts hidden."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    path = Path(notebook)
    if not path.is_file():
        raise UserError(f"{path}: no such notebook (run papermill on notebooks/02-report.ipynb first)")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        raise UserError(f"{path}: not a readable notebook: {exc}") from None
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        raise UserError(f"{path}: the notebook stopped with {errors[0].get('ename')}: {errors[0].get('evalue')}; "
                        "not rendering it")
    dropped = 0
    for cell in nb.cells:   # warnings on stderr are for the log, not the report
        keep = [o for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        dropped += len(cell.get("outputs", [])) - len(keep)
        if "outputs" in cell:
            cell["outputs"] = keep
    if dropped:
        print(f"render: left {dropped} stderr output(s) of {path.name} out of the report", file=sys.stderr)
    nb.metadata["title"] = "Signal vs Noise"
    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"signal_noise.html.j2": TEMPLATE})],
                            template_file="signal_noise.html.j2", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    # the lab theme's CSS comments cite web pages; dropping them leaves no URL for a scan to puzzle over
    body = _STYLE.sub(lambda m: _CSS_COMMENT.sub("", m.group(0)), body)
    found = external_fetches(body)
    if found:
        raise UserError(f"the HTML would load {len(found)} resource(s) from the network, e.g. {found[0]!r}")
    return body


# ---------------------------------------------------------------------------- PDF
def find_chromium() -> str:
    """$CHROMIUM, else the first Chromium or Chrome on PATH; a UserError saying how to get one."""
    env = os.environ.get("CHROMIUM")
    if env:
        found = shutil.which(env)
        if not found:
            raise UserError(f"CHROMIUM={env} is not an executable")
        return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise UserError("signal-noise render needs Chromium to print the PDF: install it with "
                    "`apt-get install chromium` (Debian/Ubuntu) or set CHROMIUM=/path/to/chrome")


def chromium_args(chromium: str, profile_dir: str) -> list[str]:
    """Headless Chromium that touches no network service and no user profile."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}",
            # Chromium's own services (updates, accounts) still call home; resolve nothing, so it stays offline
            "--host-resolver-rules=MAP * ~NOTFOUND"]


def print_pdf(html_path: Path, pdf_path: Path, chromium: str | None = None) -> None:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium (A4, no header or footer)."""
    chromium = chromium or find_chromium()
    with tempfile.TemporaryDirectory(prefix="signal-noise-chromium-") as profile_dir:
        cmd = chromium_args(chromium, profile_dir) + ["--no-pdf-header-footer", f"--print-to-pdf={pdf_path}",
                                                      html_path.resolve().as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"Chromium did not finish printing the PDF within {CHROMIUM_TIMEOUT_S} s") from None
    if proc.returncode != 0 or not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise UserError(f"Chromium failed to print the PDF (exit {proc.returncode}): {' | '.join(tail)}")


def render(notebook: str | os.PathLike, html: str | os.PathLike, pdf: str | os.PathLike | None = None,
           chromium: str | None = None) -> dict:
    """Write the report's HTML (and PDF) from an executed notebook; old files stay until both succeed.

    Returns:
      {"html": path, "pdf": path or None, "seconds": {"html": s, "pdf": s}}.
    """
    html_path, pdf_path = Path(html), Path(pdf) if pdf else None
    for out in filter(None, (html_path, pdf_path)):
        if not out.parent.is_dir():
            raise UserError(f"output folder {out.parent} does not exist")
    chromium = (chromium or find_chromium()) if pdf_path else None
    temps = []
    try:
        start = time.perf_counter()
        body = notebook_html(notebook)
        fd, tmp_html = tempfile.mkstemp(dir=html_path.parent, prefix=f".{html_path.stem}.", suffix=".tmp.html")
        temps.append(Path(tmp_html))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
        seconds = {"html": time.perf_counter() - start}
        if pdf_path:
            start = time.perf_counter()
            fd, tmp_pdf = tempfile.mkstemp(dir=pdf_path.parent, prefix=f".{pdf_path.stem}.", suffix=".tmp.pdf")
            os.close(fd)
            temps.append(Path(tmp_pdf))
            print_pdf(Path(tmp_html), Path(tmp_pdf), chromium)
            seconds["pdf"] = time.perf_counter() - start
        mode = 0o666 & ~_umask()   # mkstemp makes owner-only files; a report is for reading
        for t in temps:
            os.chmod(t, mode)
        os.replace(tmp_html, html_path)
        if pdf_path:
            os.replace(tmp_pdf, pdf_path)
    finally:
        for t in temps:
            t.unlink(missing_ok=True)
    return {"html": str(html_path), "pdf": str(pdf_path) if pdf_path else None, "seconds": seconds}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def register(sub) -> None:
    """Add the ``render`` sub-command to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser("render", help="executed 02-report notebook -> self-contained HTML and PDF",
                       description="Render an executed report notebook to one self-contained HTML file (code "
                                   "hidden, figures embedded, nothing loaded from the network) and print it to "
                                   "PDF with headless Chromium. Existing files are replaced only when both succeed.")
    p.add_argument("--notebook", required=True, help="the executed notebook (papermill's output)")
    p.add_argument("--html", required=True, help="HTML file to write")
    p.add_argument("--pdf", default=None, help="PDF file to write (needs Chromium; $CHROMIUM overrides the search)")
    p.set_defaults(func=run)


def run(args) -> int:
    out = render(args.notebook, args.html, args.pdf)
    wrote = " and ".join(f for f in (out["html"], out["pdf"]) if f)
    times = ", ".join(f"{k} {v:.1f} s" for k, v in out["seconds"].items())
    print(f"wrote {wrote} ({times})")
    return 0
