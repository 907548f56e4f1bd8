"""The tests' cache of the tiny trained pipeline: made once per code version, reused, and
made anew when a run changed it."""

from __future__ import annotations

import pytest
from tinycache import TinyCache


def test_an_entry_is_made_once_per_code_version_and_anew_after_a_run_changed_it(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "stage.py").write_text("STEPS = 1\n")
    builds = []

    def build(folder):
        builds.append(folder)
        (folder / "model.bin").write_bytes(b"weights")
        (folder / "chip_cache").mkdir()

    cache = TinyCache(tmp_path / "cache", key_of=[code])
    with cache.entry(build) as first:
        (first / "chip_cache" / "32.npy").write_bytes(b"made on first use")  # derived: allowed
    with cache.entry(build) as again:
        assert again == first and (again / "model.bin").read_bytes() == b"weights"
    assert len(builds) == 1 and cache.built_seconds is None

    with pytest.raises(AssertionError, match="model.bin"), cache.entry(build) as folder:
        (folder / "model.bin").write_bytes(b"a test wrote here")
    with cache.entry(build) as folder:
        assert (folder / "model.bin").read_bytes() == b"weights"
    assert len(builds) == 2

    (code / "stage.py").write_text("STEPS = 2\n")
    with cache.entry(build) as other:
        assert other != first
    assert len(builds) == 3 and sorted(p.name for p in (tmp_path / "cache").glob("tiny-*")) == sorted(
        {first.name, other.name}
    )


def test_code_the_build_never_runs_does_not_change_the_key(tmp_path):
    from tinycache import code_key

    (tmp_path / "lib" / "label").mkdir(parents=True)
    (tmp_path / "lib" / "stage.py").write_text("A = 1\n")
    (tmp_path / "lib" / "label" / "app.py").write_text("B = 1\n")
    ignore = (tmp_path / "lib" / "label",)
    key = code_key([tmp_path / "lib"], ignore)
    (tmp_path / "lib" / "label" / "app.py").write_text("B = 2\n")
    assert code_key([tmp_path / "lib"], ignore) == key != code_key([tmp_path / "lib"])
    (tmp_path / "lib" / "stage.py").write_text("A = 2\n")
    assert code_key([tmp_path / "lib"], ignore) != key
