"""The report in a real browser: headless Chromium (Debian's package; `make test` installs it when missing).

Chromium runs with --headless --no-sandbox --disable-gpu and no network: every host name resolves
to nothing, and Chromium's own background traffic is switched off.
"""

import json
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from bayes_intl.reporting import SECTION_TITLES

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "reports" / "test-artifacts" / "report.png"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000"]
# Appended to a copy of the page: after load, record what the browser rendered on <body data-check>.
PROBE = ("<script>window.addEventListener('load',function(){var im=[].slice.call(document.images);"
         "document.body.setAttribute('data-check',JSON.stringify({images:im.length,"
         "loaded:im.filter(function(i){return i.complete&&i.naturalWidth>0}).length,"
         "headings:[].slice.call(document.querySelectorAll('h2')).map(function(h){return h.textContent}),"
         "resources:performance.getEntriesByType('resource').map(function(e){return e.name})}))});</script>")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package (as root); "
                    "otherwise run `sudo apt-get install chromium`")
    return path


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def rendered(page: Path, tmp_path: Path) -> dict:
    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = run_chromium(tmp_path, "--dump-dom", probe.as_uri()).stdout
    start = dom.index('data-check="') + len('data-check="')
    return json.loads(unescape(dom[start:dom.index('"', start)]))


def page_requests(page: Path, tmp_path: Path) -> list[str]:
    """URLs the page itself asked the network for, read from Chromium's net log (its own
    background requests, initiator 'not an origin', are not the page's)."""
    log = tmp_path / f"net-{page.name}.json"
    run_chromium(tmp_path, f"--log-net-log={log}", "--dump-dom", page.as_uri())
    netlog = json.loads(log.read_text())
    start_job = netlog["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in netlog["events"]
            if e["type"] == start_job and "url" in e.get("params", {})
            and e["params"].get("initiator") != "not an origin"
            and not e["params"]["url"].startswith(("file:", "data:"))]


def test_report_renders_every_image_and_section_in_chromium(quick_analysis, tmp_path):
    _, result, _ = quick_analysis
    index = Path(result["report"])
    check = rendered(index, tmp_path)
    assert check["images"] >= 8
    assert check["loaded"] == check["images"]
    assert check["headings"] == list(SECTION_TITLES)
    assert check["headings"][0].startswith("1. Summary: what survives")  # the first screen is the claims
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    run_chromium(tmp_path, f"--screenshot={SCREENSHOT}", "--window-size=1200,3000", index.as_uri())
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and SCREENSHOT.stat().st_size > 50_000


def test_report_makes_no_external_request(quick_analysis, tmp_path):
    _, result, _ = quick_analysis
    index = Path(result["report"])
    assert rendered(index, tmp_path)["resources"] == []
    assert page_requests(index, tmp_path) == []


def test_external_request_detection_is_real(tmp_path):
    """The net-log check above would see a page that fetches from the network."""
    page = tmp_path / "leaky.html"
    page.write_text('<html><body><img src="https://example.com/logo.png">'
                    '<link rel="stylesheet" href="http://cdn.example.org/style.css"></body></html>')
    requests = page_requests(page, tmp_path)
    assert "https://example.com/logo.png" in requests and "http://cdn.example.org/style.css" in requests
