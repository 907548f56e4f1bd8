#!/usr/bin/env bash
# Retake the docs' screenshots (docs/images/label-tool.png, match-review.png, bear-book.png)
# from the browser tests' synthetic world: the three tests that show those views, run with
# BEARID_DOCS_SCREENSHOTS=1 so each also keeps its view there. Needs Chromium (make browser).
set -euo pipefail
cd "$(dirname "$0")/.."
BEARID_DOCS_SCREENSHOTS=1 BEARID_BROWSER_TESTS=required .venv/bin/python -m pytest -q \
    tests/test_label_browser.py::test_a_volunteer_fixes_a_photo_in_the_browser \
    tests/test_label_browser.py::test_a_curator_settles_faces_in_the_match_review \
    tests/test_book.py::test_the_book_has_a_card_per_bear_with_its_sightings_lookalikes_and_cubs
ls -l docs/images/label-tool.png docs/images/match-review.png docs/images/bear-book.png
