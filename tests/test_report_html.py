"""The Snakemake report of a finished smoke run: ``snakemake --report report.html`` (and ``.zip``)
holds every figure and table of results/paper/ with a caption, one category per study, the claims
ledger and the data provenance on its first page. Opened in headless Chromium (Debian's
``chromium``, driven by playwright): every figure renders (non-zero natural size, the PNG's own
size, wholly in the window) and every table is there with its content. Screenshots of the first
page and of every figure view are written to the folder the test prints (and copied to
$HEADSTART_REPORT_SCREENSHOTS when set), for a person to look at.

Needs a finished smoke run (HEADSTART_FINISHED_SMOKE, see tests/test_rerun.py: it is copied, never
changed) and Chromium: /usr/bin/chromium, installed here with apt-get when running as root.
Starts Snakemake: slow."""
from __future__ import annotations

import base64
import os
import re
import shutil
import struct
import subprocess
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from test_rerun import FINISHED_ENV, SMOKE, finished  # noqa: F401  (the module's fixture: a copied smoke run)
from test_workflow import snakemake

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS_ENV = "HEADSTART_REPORT_SCREENSHOTS"
VIEWPORT = {"width": 1600, "height": 1000}
STUDIES = ("reference", "growth", "up", "jepa", "blotch")


def _apt_install_chromium() -> str:
    """Install Debian's chromium (root only); '' when it worked, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"{CHROMIUM} is absent and installing it needs root (apt-get install chromium)"
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is absent and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    for cmd in (install, ["apt-get", "update", "-q"], install):   # the package lists may be missing
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if cmd is install and proc.returncode == 0 and CHROMIUM.exists():
            return ""
    return f"apt-get install chromium failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        why = _apt_install_chromium()
        if why:
            pytest.skip(why)
    with sync_api.sync_playwright() as pw:
        # Debian's chromium, not a browser download of playwright's own; no sandbox as root
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def run(request) -> Path:
    """A private copy of the finished smoke run (tests/test_rerun.py's ``finished``)."""
    if not os.environ.get(FINISHED_ENV):
        pytest.skip(f"needs a finished smoke run: set {FINISHED_ENV} to its folder (.ci/run does)")
    return request.getfixturevalue("finished")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report_screenshots")
    print(f"\nreport screenshots: {path}")
    yield path
    if os.environ.get(SCREENSHOTS_ENV):
        dest = Path(os.environ[SCREENSHOTS_ENV])
        shutil.copytree(path, dest, dirs_exist_ok=True)
        print(f"report screenshots copied to {dest}")


def expected_results(run: Path) -> dict[str, str]:
    """Every figure (PNG) and table (Markdown) of results/paper/ -> the category it belongs in (the
    PDF and CSV beside them are copies of the same content for other readers)."""
    out = {}
    for f in sorted((run / "results/paper").iterdir()):
        if f.suffix in (".png", ".md"):
            study = f.stem.split("_")[0]
            out[f"results/paper/{f.name}"] = study if study in STUDIES else f.stem
    return out


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def data_uri_bytes(uri: str) -> bytes:
    assert uri.startswith("data:"), uri[:80]
    return base64.b64decode(uri.split(";base64,", 1)[1])


def build(run: Path, path: Path) -> float:
    t = time.perf_counter()
    snakemake(*SMOKE, "--report", str(path), cwd=run)
    assert path.is_file() and path.stat().st_size > 0
    return time.perf_counter() - t


def open_report(browser, html: Path):
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.as_uri())
    page.wait_for_function("typeof app !== 'undefined' && document.querySelector('#app').children.length > 0")
    return page, errors


def test_the_html_report_shows_the_ledger_and_every_figure_and_table(run, browser, shots, tmp_path):
    html = tmp_path / "report.html"
    seconds = build(run, html)
    print(f"snakemake --report report.html: {seconds:.1f} s, {html.stat().st_size / 1e6:.1f} MB")
    expected = expected_results(run)
    paper = run / "results/paper"
    page, errors = open_report(browser, html)

    # -- the embedded data: every figure and table, in its study's category, with a full caption
    results = page.evaluate("results")
    categories = page.evaluate("categories")
    assert set(results) == set(expected), (sorted(set(expected) - set(results)), sorted(set(results) - set(expected)))
    placed = {p: cat for cat, subs in categories.items() for paths in subs.values() for p in paths}
    assert placed == expected
    for path, entry in results.items():
        assert data_uri_bytes(entry["data_uri"]) == (run / path).read_bytes(), path
        caption = entry["caption"]
        assert "Config and data." in caption and "How to read." in caption, (path, caption[:300])
        assert "system-message" not in caption and "{{" not in caption, (path, caption)

    # -- the first page: the run, the whole ledger, the data provenance; its top in view
    desc = page.locator("div.prose").first
    text = desc.inner_text()
    assert desc.locator("h1").first.bounding_box()["y"] >= 0, "the first page's title is scrolled out of reach"
    assert page.locator(".system-message").count() == 0, page.locator(".system-message").first.inner_text()
    assert "{{" not in text and "{%" not in text
    for heading in ("This run", "Claims ledger", "Data provenance"):
        assert desc.get_by_role("heading", name=heading).count() == 1, heading
    assert "This is a SMOKE run" in text
    claims = pd.read_csv(paper / "claims.csv", keep_default_na=False)
    assert "**Provenance.** scale: smoke · data: built-in generated" in (paper / "claims.md").read_text()
    assert "Provenance. scale: smoke · data: built-in generated" in text
    summary = desc.locator("table", has_text="Verdicts per study")
    assert summary.locator("tbody tr").count() == claims["study"].nunique() + 1
    links = desc.locator("a[href^='javascript:app.showResultInfo']")
    assert links.count() >= len(claims) + 1        # each claim's figure or table, and claims.md
    for study in STUDIES:
        assert desc.get_by_role("heading", name=study, exact=True).count() == 1, study
    assert desc.locator("li", has_text=" — ").count() >= len(claims)
    data_md = (paper / "data.md").read_text()
    for sha in re.findall(r"`([0-9a-f]{64})`", data_md):
        assert sha in text, sha
    page.screenshot(path=str(shots / "first_page.png"))
    for section in ("claims-ledger", "data-provenance"):      # their tops, as a reader scrolls to them
        page.evaluate(f"document.getElementById('{section}').scrollIntoView()")
        page.screenshot(path=str(shots / f"first_page_{section}.png"))
    # a claim's link opens the result that shows it
    links.nth(1).click()
    page.wait_for_function("app.state.navbarMode === 'resultinfo'")
    assert page.evaluate("app.state.resultPath") in expected

    # -- every category, as a reader opens it: each result listed; each figure shown and rendered
    rendered = {}
    for cat in sorted(set(expected.values())):
        page.evaluate("app.setView({navbarMode: 'menu'})")
        nav = page.locator("nav")
        nav.get_by_text(cat, exact=True).click()
        for path in sorted(p for p, c in expected.items() if c == cat):
            row = nav.locator("tr", has=page.locator("td", has_text=path))
            assert row.count() == 1, (cat, path)
            eye = row.locator("a[iconname=eye]")
            if path.endswith(".md"):     # a table: the eye button downloads the file itself
                assert data_uri_bytes(eye.get_attribute("href")) == (run / path).read_bytes(), path
                continue
            eye.click()
            img = page.locator("img[src^='data:image/png']")
            img.wait_for()
            page.wait_for_function("document.querySelector(\"img[src^='data:image/png']\").complete")
            info = img.evaluate("i => ({w: i.naturalWidth, h: i.naturalHeight, src: i.src,"
                                " box: i.getBoundingClientRect().toJSON()})")
            assert info["src"] == results[path]["data_uri"], path
            assert (info["w"], info["h"]) == png_size(run / path) and info["w"] > 0 and info["h"] > 0, (path, info)
            box = info["box"]
            assert box["width"] > 0.4 * min(info["w"], VIEWPORT["width"] - 400), (path, box)
            assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"] + 1, (path, box)  # whole figure in view
            page.screenshot(path=str(shots / f"figure_{Path(path).stem}.png"))
            rendered[path] = (info["w"], info["h"])
    assert set(rendered) == {p for p in expected if p.endswith(".png")}
    assert not errors, errors
    page.close()


def test_the_zip_report_holds_every_figure_and_table(run, browser, tmp_path):
    z = tmp_path / "report.zip"
    seconds = build(run, z)
    print(f"snakemake --report report.zip: {seconds:.1f} s, {z.stat().st_size / 1e6:.1f} MB")
    out = tmp_path / "unzipped"
    with zipfile.ZipFile(z) as f:
        f.extractall(out)
    html = out / "report" / "report.html"
    assert html.is_file(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))[:20]
    expected = expected_results(run)
    page, errors = open_report(browser, html)
    results = page.evaluate("results")
    assert set(results) == set(expected)
    for path, entry in results.items():
        stored = html.parent / entry["data_uri"]
        assert stored.is_file() and stored.read_bytes() == (run / path).read_bytes(), (path, entry["data_uri"])
    sizes = page.evaluate("""async (paths) => Promise.all(paths.map(p => new Promise(done => {
        const img = new Image();
        img.onload = () => done([p, img.naturalWidth, img.naturalHeight]);
        img.onerror = () => done([p, 0, 0]);
        img.src = results[p].data_uri;
    })))""", [p for p in expected if p.endswith(".png")])
    for path, w, h in sizes:
        assert (w, h) == png_size(run / path), (path, w, h)
    assert "Claims ledger" in page.locator("div.prose").first.inner_text()
    assert not errors, errors
    page.close()
