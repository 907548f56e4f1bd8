"""`bearid label`: review and fix faces, landmarks and IDs of an imglab XML in the browser.

store.py keeps the XML, its journal and its versions; queues.py says which photos need a
person and hands each volunteer different ones; app.py serves the page and the JSON API;
static/ is the page itself (plain HTML, CSS and one JavaScript module: no build step).
"""
