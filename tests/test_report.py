"""The report: the 02-report notebook, ``signal-noise render``, and the HTML and PDF they make.

The end-to-end test runs ``make report PROFILE=tiny`` into a temporary folder (sweeps through the 01
notebook, the 02 notebook with papermill, then render) and checks the outputs: every figure embedded, nothing
fetched from the network (Chromium's net log), a page that renders, a PDF with pages, and every
number shown equal to what ``signal-noise analyze`` computes from the same store. Chromium and
poppler's tools are needed; without them those tests skip, unless $CI is set, where they fail.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import pytest

from signal_noise import narrative, render
from signal_noise.analyze import DEFAULT_PARAMS
from signal_noise.errors import UserError
from signal_noise.paths import ROOT

NOTEBOOK = ROOT / "notebooks" / "02-report.ipynb"
# per hyperparameter: learning curves and parallel coordinates; then effects, spreads, final accuracy, MDE
EXPECTED_FIGURES = 2 * len(DEFAULT_PARAMS) + 4
BIN = Path(sys.executable).parent


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def need_tools(*names: str) -> None:
    """Skip when a tool is missing, except under CI, where the report's tools must be installed."""
    missing = [n for n in names if (n == "chromium" and not _chromium()) or (n != "chromium" and not shutil.which(n))]
    if missing:
        message = f"missing {', '.join(missing)} (apt-get install chromium poppler-utils)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)


def _chromium() -> str | None:
    try:
        return render.find_chromium()
    except UserError:
        return None


# ---------------------------------------------------------------------------- the notebook as committed
def test_notebook_is_clean_and_parameterised():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        assert cell.get("outputs", []) == [] and cell.get("execution_count") is None
        if cell.cell_type == "code":
            lines = cell.source.splitlines()
            assert not any(line.lstrip().startswith(("def ", "class ")) for line in lines), "a def belongs in src"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and nb.cells.index(tagged[0]) == 0
    params = [line for line in tagged[0].source.splitlines() if line.strip()]
    assert [p.split(":")[0] for p in params] == ["store", "profile"]
    assert all(": str = \"" in p for p in params), "typed literals only"


# ---------------------------------------------------------------------------- render, without a real report
def _notebook(path: Path, error: bool = False) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('x')")
    cell.outputs = [nbformat.v4.new_output("display_data", {"text/markdown": "# A heading\n\nsome *text*"}),
                    nbformat.v4.new_output("stream", name="stderr", text="a warning\n")]
    if error:
        cell.outputs.append(nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[]))
    nb.cells = [cell]
    nbformat.write(nb, path)
    return path


def test_external_fetches_finds_cdn_resources_but_not_links():
    page = ('<script src="https://cdn.example/x.js"></script><link rel="stylesheet" href="//fonts.example/f.css">'
            '<style>@import url("https://a.example/b.css"); p { background: url(http://c.example/i.png) }</style>'
            '<img src="data:image/png;base64,AAAA"><a href="https://example.org/">a link</a>')
    found = render.external_fetches(page)
    assert len(found) == 4
    assert render.external_fetches('<a href="https://example.org/">x</a><img src="data:image/png;base64,AA">') == []


def test_render_html_hides_code_and_drops_stderr(tmp_path):
    out = render.render(_notebook(tmp_path / "nb.ipynb"), tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert out["pdf"] is None and "A heading" in page
    assert "print(&#39;x&#39;)" not in page and "print('x')" not in page and "a warning" not in page
    assert render.external_fetches(page) == []
    assert oct((tmp_path / "r.html").stat().st_mode & 0o044) != "0o0", "a report is readable by others"


def test_failed_render_keeps_the_previous_report(tmp_path, monkeypatch):
    html, pdf = tmp_path / "r.html", tmp_path / "r.pdf"
    html.write_text("old html")
    pdf.write_text("old pdf")
    with pytest.raises(UserError, match="ValueError: boom"):
        render.render(_notebook(tmp_path / "bad.ipynb", error=True), html, pdf, chromium="/bin/true")
    monkeypatch.setenv("CHROMIUM", "/bin/false")   # HTML succeeds, printing fails: neither file moves
    with pytest.raises(UserError, match="Chromium failed"):
        render.render(_notebook(tmp_path / "nb.ipynb"), html, pdf)
    assert html.read_text() == "old html" and pdf.read_text() == "old pdf"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ipynb", "nb.ipynb", "r.html", "r.pdf"]


def test_missing_chromium_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="apt-get install chromium.*CHROMIUM="):
        render.find_chromium()
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "nope"))
    with pytest.raises(UserError, match="not an executable"):
        render.find_chromium()


def test_render_subcommand_parses(tmp_path):
    parser = argparse.ArgumentParser()
    render.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["render", "--notebook", str(_notebook(tmp_path / "nb.ipynb")),
                              "--html", str(tmp_path / "r.html")])
    assert args.func(args) == 0 and (tmp_path / "r.html").is_file()


# ---------------------------------------------------------------------------- end to end
def _run(cmd: list[str], **kw) -> None:
    """Run a step of the build; on failure show its stderr, not just its exit code."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``make report PROFILE=tiny`` into a temporary results and report folder (so the shipped report
    is never touched): both sweeps through the 01 notebook, the 02 notebook, the HTML and the PDF;
    then analyze's JSON on the same store."""
    need_tools("chromium", "pdfinfo", "pdftoppm", "pdftotext", "make")
    base = tmp_path_factory.mktemp("report")
    env = {**os.environ, "WANDB_MODE": "disabled"}
    _run(["make", "-C", str(ROOT), "report", "PROFILE=tiny", f"RESULTS={base}", f"REPORT={base}"], env=env)
    store = base / "tiny.sqlite"
    html, pdf = base / "signal-vs-noise.html", base / "signal-vs-noise.pdf"
    for executed in ("01-sweep-signal-tiny", "01-sweep-noise-tiny", "02-report-tiny"):
        assert (base / "executed" / f"{executed}.ipynb").is_file()
    analysis = base / "analysis.json"
    _run([str(BIN / "signal-noise"), "analyze", str(store), "--json", str(analysis)])
    return {"store": store, "html": html, "pdf": pdf, "page": html.read_text(encoding="utf-8"),
            "analysis": json.loads(analysis.read_text()), "dir": base}


class _Page(HTMLParser):
    """Tagged numbers (span.num / span.ref with their text), images, and prose outside tagged spans."""
    SKIP = {"style", "script", "code", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.numbers, self.images, self.prose, self.stack = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
            return
        classes = (a.get("class") or "").split()
        tagged = tag == "span" and ({"num", "ref", "analyze-text"} & set(classes))
        if tagged and "num" in classes:
            self.numbers.append({"key": a["data-key"], "spec": a["data-spec"], "text": ""})
        self.stack.append((tag, "num" if tagged and "num" in classes else "skip" if tagged or tag in self.SKIP else ""))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        kinds = [k for _, k in self.stack]
        if "num" in kinds:
            self.numbers[-1]["text"] += data
        elif "skip" not in kinds and any(t == "body" for t, _ in self.stack):
            self.prose.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def _shown(value, spec: str) -> str:
    """How the report promises to show a value (the contract in numtags' docstring)."""
    if value is None:
        return "n/a"
    if spec == "p":
        return "< 0.001" if value < 0.001 else f"{value:.3f}"
    return format(value, spec)


def _lookup(data, key: str):
    for part in key.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


@pytest.mark.slow
def test_html_embeds_every_figure(built):
    images = _parse(built["page"]).images
    assert len(images) == EXPECTED_FIGURES
    assert all(src.startswith("data:image/png;base64,") for src in images)


@pytest.mark.slow
def test_html_loads_nothing_from_the_network(built):
    page = built["page"]
    assert render.external_fetches(page) == []
    assert "require.js" not in page and "mathjax" not in page.lower() and "cdnjs" not in page
    assert "http://" not in page and "https://" not in page


@pytest.mark.slow
def test_html_numbers_equal_analyze(built):
    analysis, numbers = built["analysis"], _parse(built["page"]).numbers
    checked = 0
    for n in numbers:
        prefix = n["key"].split(".")[0]
        if prefix in ("setup", "derived", "const"):
            continue
        assert n["text"] == _shown(_lookup(analysis, n["key"]), n["spec"]), n
        checked += 1
    assert checked > 100
    for key in ("params.hidden_size.signal.effect", "params.batch_size.noise.ci.1", "params.num_layers.ratio",
                "params.hidden_size.signal.p_value", "noise.test_set_floor_sd", "signal.overall_spread_first"):
        assert key in {n["key"] for n in numbers}, key
    block = re.search(r'<script[^>]*\bid="analysis-result"[^>]*>(.*?)</script>', built["page"], re.S)
    assert json.loads(block.group(1).replace("<\\/", "</")) == analysis


@pytest.mark.slow
def test_html_prose_has_no_untagged_number(built):
    prose = " ".join(_parse(built["page"]).prose)
    digits = [prose[max(0, i - 30):i + 10] for i, ch in enumerate(prose) if ch.isdigit()]
    assert digits == []


@pytest.mark.slow
def test_pdf_has_the_report(built):
    info = subprocess.run(["pdfinfo", str(built["pdf"])], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert pages >= 8
    png = built["dir"] / "page"
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(built["pdf"]), str(png)], check=True)
    image = _image(next(built["dir"].glob("page*.png")))
    assert image.std() > 10 and (image < 200).mean() > 0.01
    text = subprocess.run(["pdftotext", str(built["pdf"]), "-"], capture_output=True, text=True, check=True).stdout
    for heading in ("Signal vs Noise", "Model and setup", "Hidden size", "The framework, with statistics",
                    "write-up's numbers against this build's", "What the write-up lacked", "test-set floor",
                    "What a fixed seed does not freeze", "How to read this for your own sweep", "Conclusions"):
        assert heading in text, heading
    assert "Profile: tiny" in text


def _image(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"), dtype=float)


def _net_log(path: Path) -> dict:
    """Chromium's net log; one cut off at exit lacks its closing brackets."""
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.rstrip().rstrip(",") + "]}")


@pytest.mark.slow
def test_chromium_renders_the_html_offline(built, tmp_path):
    shot, netlog = tmp_path / "shot.png", tmp_path / "net.json"
    cmd = render.chromium_args(render.find_chromium(), str(tmp_path / "profile")) + [
        f"--log-net-log={netlog}", "--window-size=1280,2000",
        "--hide-scrollbars", f"--screenshot={shot}", built["html"].resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    image = _image(shot)
    assert image.std() > 10 and (image < 200).mean() > 0.01, "the screenshot is blank"
    log = _net_log(netlog)
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # the page's own requests come from its origin; Chromium's background services have none
    starts = [e.get("params", {}) for e in log["events"] if e["type"] == start_job]
    fetched = [p["url"] for p in starts if "url" in p and p.get("initiator") != "not an origin"]
    assert fetched == []


@pytest.mark.slow
def test_report_lists_failed_runs(built, tmp_path):
    store = tmp_path / "with-failure.sqlite"
    with sqlite3.connect(built["store"]) as src, sqlite3.connect(store) as dst:
        src.backup(dst)
        run_id = dst.execute("SELECT run_id FROM runs WHERE arm='signal' ORDER BY plan_index LIMIT 1").fetchone()[0]
        dst.execute("UPDATE runs SET status='failed', reason='loss became nan at epoch 1, step 3' WHERE run_id=?",
                    (run_id,))
    inputs = render.report_inputs(store, "tiny")
    assert inputs.result["n_runs"]["signal"] == 7 and inputs.setup["n_failed"] == 1
    text = narrative.setup_section(inputs.setup, inputs.result) + narrative.title(inputs.setup, inputs.result)
    assert "Failed runs, left out of every number below" in text and "loss became nan at epoch 1, step 3" in text
    assert "run(s) failed and are left out" in text
