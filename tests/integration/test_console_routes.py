"""The console's routes without a browser: the page, its assets, their security headers,
and that `import app` does not read them (issue 13)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from devstack import PROJECT_ROOT


def _csp(headers):
    return dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))


def test_the_page_is_public_and_carries_the_security_headers(api):
    answer = api.get("/console")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    body = answer.body.decode() if isinstance(answer.body, bytes) else answer.body
    assert '<script type="module" src="console/assets/main.js">' in body
    assert "<script>" not in body and " on" not in body.split("<body>")[1].split(">")[0]  # no inline script
    csp = _csp(answer.headers)
    assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    assert csp["img-src"] == "'self' data:"  # the QR code is a data: PNG
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_connect_src_allows_only_the_api_and_the_media_bucket(api, settings):
    connect = _csp(api.get("/console").headers)["connect-src"].split()
    # the test stack has a media bucket on LocalStack: the browser PUTs uploads there
    assert connect == ["'self'", settings.aws_endpoint_url.rstrip("/")]


def test_media_origins_on_aws_and_without_a_bucket():
    from chalicelib.console import media_origins

    assert media_origins(None, None, "us-east-1") == []
    assert media_origins("zemeow-media-1-sa-east-1", None, "sa-east-1") == [
        "https://zemeow-media-1-sa-east-1.s3.amazonaws.com", "https://zemeow-media-1-sa-east-1.s3.sa-east-1.amazonaws.com"]


@pytest.mark.parametrize("asset,kind", [("main.js", "text/javascript"), ("console.css", "text/css"),
                                        ("icon.svg", "image/svg+xml")])
def test_assets_are_served_with_their_type_and_the_same_headers(api, asset, kind):
    answer = api.get(f"/console/assets/{asset}")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith(kind)
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    again = api.get(f"/console/assets/{asset}", headers={"If-None-Match": answer.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("asset", ["nope.js", "index.html", "__init__.py", "..%2Fapp.py", ".hidden.js", "MAIN.JS"])
def test_anything_else_is_404(api, asset):
    answer = api.get(f"/console/assets/{asset}")
    assert answer.status_code == 404
    assert answer.json_body["code"] == "not_found"


def test_no_asset_writes_html_from_data():
    """Everything user-supplied is rendered as text: no innerHTML / outerHTML /
    insertAdjacentHTML / document.write anywhere in the console's scripts."""
    for path in (PROJECT_ROOT / "chalicelib" / "console").glob("*.js"):
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                     "localStorage"):
            assert sink not in text, f"{path.name} uses {sink}"


def test_import_app_does_not_load_the_console():
    code = "import sys, app; print('chalicelib.console' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=str(PROJECT_ROOT), capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"})
    assert out.stdout.strip() == "False"
