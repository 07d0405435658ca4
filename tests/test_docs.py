"""The docs hold together: every relative link reaches a page (and a heading of it), and the
index of docs/ links every page. (Their sh examples run against a live server: .ci/readme.)"""

import re
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```.*?^```$", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+\s+(.*)$", re.M)


def pages():
    return [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(path):
    return FENCE.sub("", path.read_text())


def anchors(path):
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-") for title in HEADING.findall(prose(path))}


def relative_links(path):
    return [link for link in LINK.findall(prose(path)) if not re.match(r"[a-z]+:", link)]


class DocsTest(unittest.TestCase):
    def test_every_relative_link_reaches_a_page_and_heading(self):
        for page in pages():
            for link in relative_links(page):
                target, _, anchor = link.partition("#")
                path = (page.parent / target).resolve() if target else page
                with self.subTest(page=page.relative_to(ROOT), link=link):
                    self.assertTrue(path.exists(), f"{link}: no such file")
                    if anchor and path.suffix == ".md":
                        self.assertIn(anchor, anchors(path), f"{link}: no such heading")

    def test_the_index_links_every_page_of_docs(self):
        index = ROOT / "docs" / "README.md"
        linked = {(index.parent / link.partition("#")[0]).resolve() for link in relative_links(index)}
        for page in sorted((ROOT / "docs").glob("*.md")):
            if page != index:
                with self.subTest(page=page.name):
                    self.assertIn(page.resolve(), linked, f"docs/README.md does not link {page.name}")

    def test_the_readme_stays_a_newcomers_page(self):
        self.assertLessEqual(len((ROOT / "README.md").read_text().splitlines()), 400)
