"""`bearid label`: review and fix faces, landmarks and IDs of an imglab XML in the browser.

store.py keeps the XML, its journal and its versions (edits, match decisions, merges and
splits); queues.py says which photos need a person and hands each volunteer different ones;
matches.py gives the match review candidates from a bundle run in the tool, identities.py the
next free bear ID; operations.py carries merges, splits and filing into the archive;
accounts.py and auth.py are volunteers' accounts and the login in front of the app; app.py
serves the page and the JSON API; static/ is the page itself (plain HTML, CSS and JavaScript
modules: no build step).
"""
