"""One loader for a user's files (optlab.user_files): an optimizer file and a workload file go through it."""

from __future__ import annotations

import hashlib
import sys

import pytest

from optlab import references, user_files
from optlab.errors import ConfigError
from optlab.problem import workload_ref


def test_a_file_named_by_both_kinds_of_reference_is_imported_once(tmp_path):
    path = tmp_path / "both.py"
    path.write_text("import torch\nclass Opt(torch.optim.SGD):\n    pass\n")
    with pytest.raises(ConfigError, match="has no 'tiny'"):  # imported, then the workload NAME is missing
        workload_ref.load(f"{path}:tiny")
    cls = references.load_class(f"{path}:Opt")
    loaded = user_files.loaded(path)
    assert loaded is not None and sys.modules[cls.__module__] is loaded.module
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [name for name, m in sys.modules.items() if getattr(m, "__file__", None) == str(path)] == [cls.__module__]


def test_an_import_that_raises_is_one_line_in_each_callers_words(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("raise ValueError('boom\\nsecond line')\n")
    with pytest.raises(ConfigError) as strategy:
        references.load_class(f"{path}:Opt")
    with pytest.raises(ConfigError) as workload:
        workload_ref.load(f"{path}:tiny")
    assert str(strategy.value) == f"strategy 'broken.py:Opt': importing {path} failed: ValueError: boom"
    assert str(workload.value) == f"workload file {str(path)!r} failed to import: ValueError: boom"


def test_relative_file_references_are_made_absolute_against_the_given_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.py").write_text("")
    assert references.absolute("sub/w.py:Opt", tmp_path) == f"{tmp_path / 'sub' / 'w.py'}:Opt"
    assert workload_ref.absolute("sub/w.py:tiny", tmp_path) == f"{tmp_path / 'sub' / 'w.py'}:tiny"
    assert references.absolute("po:lion", tmp_path) == "po:lion"  # not a reference: unchanged
