"""Code fingerprints: a group's hash follows the bytes of its files and nothing else."""

import pytest

from mmicl import fingerprint


@pytest.fixture
def tree(tmp_path, monkeypatch):
    (tmp_path / "vlm").mkdir()
    (tmp_path / "vlm" / "adapter.py").write_text("x = 1\n")
    (tmp_path / "vlm" / "commands.py").write_text("HELP = 'a'\n")
    monkeypatch.setattr(fingerprint, "ROOT", tmp_path)
    fingerprint.fingerprint.cache_clear()
    yield tmp_path
    fingerprint.fingerprint.cache_clear()


def _vlm():
    fingerprint.fingerprint.cache_clear()
    return fingerprint.code_version("vlm")


def test_the_vlm_commands_help_text_is_not_vlm_code(tree):
    before = _vlm()
    (tree / "vlm" / "commands.py").write_text("HELP = 'a better help text'\n")
    assert _vlm() == before
    (tree / "vlm" / "adapter.py").write_text("x = 2\n")
    assert _vlm() != before


def test_unknown_group_is_named():
    with pytest.raises(ValueError, match="unknown code group 'nope'"):
        fingerprint.code_version("nope")
