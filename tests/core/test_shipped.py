"""A shipped model folder that is damaged (a file missing, the manifest cut short) is reported
as such, with the folder and how to restore it, instead of counting as not shipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agentrt.core.config import shipped_settings
from agentrt.core.errors import ModelNotFoundError
from agentrt.core.shipped import (
    ADAPTER_MANIFEST,
    ADAPTER_WEIGHTS,
    SHIPPED_MODEL,
    read_manifest,
    shipped_adapter,
    shipped_damage,
    shipped_present,
    shipped_root,
)

REAL_SHIPPED = shipped_root() / SHIPPED_MODEL
pytestmark = pytest.mark.skipif(not REAL_SHIPPED.is_dir(),
                                reason="no trained adapter is shipped in this checkout")


@pytest.fixture
def root(tmp_path) -> Path:
    shutil.copytree(REAL_SHIPPED, tmp_path / SHIPPED_MODEL)
    return tmp_path


def test_a_complete_folder_is_shipped_and_undamaged(root):
    assert shipped_adapter(SHIPPED_MODEL, root) == root / SHIPPED_MODEL
    assert shipped_present(SHIPPED_MODEL, root) and shipped_damage(SHIPPED_MODEL, root) is None
    assert shipped_damage("no-such-model", root) is None
    assert not shipped_present("no-such-model", root)


def test_missing_weights_are_damage_that_names_the_folder_and_the_fix(root):
    folder = root / SHIPPED_MODEL
    (folder / ADAPTER_WEIGHTS).unlink()
    assert shipped_adapter(SHIPPED_MODEL, root) is None and shipped_present(SHIPPED_MODEL, root)
    damage = shipped_damage(SHIPPED_MODEL, root)
    assert f"{folder} is incomplete (missing {ADAPTER_WEIGHTS})" in damage
    assert f"git checkout -- {folder}" in damage and "reinstall agentrt" in damage
    with pytest.raises(ModelNotFoundError, match="incomplete"):
        shipped_settings(SHIPPED_MODEL, root)


def test_a_truncated_manifest_shows_the_json_error(root):
    manifest = root / SHIPPED_MODEL / ADAPTER_MANIFEST
    manifest.write_text(manifest.read_text()[:100])
    with pytest.raises(ModelNotFoundError, match=r"is not valid JSON: Unterminated string .*line"):
        read_manifest(root / SHIPPED_MODEL)
    damage = shipped_damage(SHIPPED_MODEL, root)
    assert "damaged" in damage and "not valid JSON" in damage and "git checkout" in damage
    manifest.write_text('{"name": "x"}')
    with pytest.raises(ModelNotFoundError, match="is invalid: base_model: Field required"):
        read_manifest(root / SHIPPED_MODEL)
