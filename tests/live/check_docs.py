"""Loads /docs from a live server in headless Chromium (Debian's, driven by Playwright).

Fails unless Swagger UI renders the API's operations, unless a person can sign in from the
page (Authorize, the OAuth2 password grant with EMAIL and PASSWORD) and then call an
authenticated operation (GET /v1/auth/me, "Try it out", "Execute") and get 200, and if the
page asks any host other than the server for anything (the docs must work offline).
Also fails unless the page sends a Content-Security-Policy and breaks none of it, unless a refused
sign-in shows the API's message, if the sign-in form shows client_id/client_secret (unused), and
if the token is kept anywhere but in the page's memory (storage, cookies, or still signed in
on a new visit).
Usage: python tests/live/check_docs.py http://127.0.0.1:5000 EMAIL PASSWORD
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


def sign_in(page, email, password):
    """Authorize -> oauth2Password: first a wrong password, then the right one. Answers the token
    request's status, the error the page showed for the wrong password, and whether the unused
    client fields (client_id, client_secret, where to send them) are visible."""
    page.click(".auth-wrapper .authorize")
    oauth = page.locator(".auth-container", has_text="oauth2Password")
    client_fields = any(
        oauth.locator(selector).is_visible() for selector in ("#client_id", "#client_secret", "#password_type")
    )
    oauth.locator("#oauth_username").fill(email)
    oauth.locator("#oauth_password").fill(password + " but wrong")
    with page.expect_response(lambda response: response.url.endswith("/v1/auth/token")):
        oauth.locator("button.authorize").click()
    refused = oauth.locator(".errors").inner_text(timeout=10_000)
    oauth.locator("#oauth_password").fill(password)
    with page.expect_response(lambda response: response.url.endswith("/v1/auth/token")) as token:
        oauth.locator("button.authorize").click()
    oauth.get_by_role("button", name="Logout").wait_for(timeout=10_000)  # Swagger UI holds the token now
    oauth.locator(".btn-done").click()
    return token.value.status, refused, client_fields


def call_me(page):
    """Try it out on GET /v1/auth/me; answers (status, Authorization header sent)."""
    page.click("#operations-auth-getMe .opblock-summary")
    page.click("#operations-auth-getMe .try-out__btn")
    with page.expect_response(lambda response: response.url.endswith("/v1/auth/me")) as answer:
        page.click("#operations-auth-getMe .execute")
    return answer.value.status, answer.value.request.headers.get("authorization", "")


def main(base_url, email, password):
    server = urlsplit(base_url).netloc
    foreign, violations = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.on(
            "request", lambda request: urlsplit(request.url).netloc not in (server, "") and foreign.append(request.url)
        )
        page.on("console", lambda note: "Content Security Policy" in note.text and violations.append(note.text))
        document = page.goto(f"{base_url}/docs", wait_until="networkidle")
        policy = document.headers.get("content-security-policy", "")
        page.wait_for_selector(".opblock", timeout=20_000)
        operations = page.locator(".opblock").count()
        paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        token_status, refused, client_fields = sign_in(page, email, password)
        me_status, authorization = call_me(page)
        page.screenshot(path=os.path.join(tempfile.gettempdir(), "docs-page.png"))
        kept = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
        page.goto(f"{base_url}/docs", wait_until="networkidle")  # the page again, as a new visit
        page.wait_for_selector(".opblock", timeout=20_000)
        after_reload, _ = call_me(page)
        browser.close()
    print(f"docs page: {operations} operations rendered, {len(paths)} distinct paths, {len(foreign)} foreign requests")
    print(f"docs page: Authorize got {token_status} from /v1/auth/token, then GET /v1/auth/me answered {me_status}")
    print(f"docs page: a wrong password showed {refused!r}; on a new visit /v1/auth/me answered {after_reload}")
    print(f"docs page: Content-Security-Policy {policy!r}, {len(violations)} violations")
    problems = []
    if token_status != 200 or me_status != 200 or not authorization.startswith("Bearer "):
        problems.append("signing in from the page and calling /v1/auth/me did not work")
    if "Invalid email or password" not in refused:
        problems.append("a refused sign-in does not show the API's message")
    if client_fields:
        problems.append("the sign-in form shows client_id/client_secret, which the API ignores")
    if kept != [0, 0, ""] or after_reload != 401:
        problems.append(f"the token is kept beyond the page's memory (storage, cookies: {kept}; {after_reload})")
    if "default-src 'none'" not in policy or "unsafe" in policy:
        problems.append("no strict Content-Security-Policy")
    if violations:
        problems.append(f"Content-Security-Policy violations: {violations}")
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
    sys.exit(main(sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]))
