"""Loads /docs from a live server in headless Chromium (Debian's, driven by Playwright).

Fails unless Swagger UI renders the API's operations, and fails if the page
asks any host other than the server for anything (the docs must work offline).
Usage: python tests/live/check_docs.py http://127.0.0.1:5000
"""

import os
import sys
import tempfile
from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(base_url):
    server = urlsplit(base_url).netloc
    foreign = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.on(
            "request", lambda request: urlsplit(request.url).netloc not in (server, "") and foreign.append(request.url)
        )
        page.goto(f"{base_url}/docs", wait_until="networkidle")
        page.wait_for_selector(".opblock", timeout=20_000)
        operations = page.locator(".opblock").count()
        paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        page.screenshot(path=os.path.join(tempfile.gettempdir(), "docs-page.png"))
        browser.close()
    print(f"docs page: {operations} operations rendered, {len(paths)} distinct paths, {len(foreign)} foreign requests")
    problems = []
    if operations < 30:
        problems.append(f"only {operations} operations rendered")
    for expected in ("/v1/buckets", "/v1/movies/{movie_id}/actors", "/v1/images/{image_id}/file"):
        if not any(path.replace("\u200b", "") == expected for path in paths):
            problems.append(f"{expected} not rendered")
    if foreign:
        problems.append(f"requests to other hosts: {foreign}")
    for problem in problems:
        print("FAIL:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].rstrip("/")))
