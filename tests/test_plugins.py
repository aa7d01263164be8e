"""``--import``: a user's module given by name or by path (causalunlearn.plugins, issue 12 §5)."""

from __future__ import annotations

import sys

import pytest

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.plugins import IMPORT_HINT, import_plugin, import_plugins


@pytest.fixture
def clean_modules(monkeypatch):
    """Modules and path entries a test adds are gone afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def _write(path, text="VALUE = 42\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_module_name_is_found_in_the_working_directory(tmp_path, monkeypatch, clean_modules):
    _write(tmp_path / "cu_plugin_by_name.py")
    monkeypatch.chdir(tmp_path)
    module = import_plugin("cu_plugin_by_name")
    assert module.VALUE == 42
    assert import_plugin("cu_plugin_by_name") is module  # imported once


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_a_file_path_is_imported_under_its_stem(tmp_path, monkeypatch, clean_modules, relative):
    file = _write(tmp_path / "plugins" / "cu_plugin_file.py")
    monkeypatch.chdir(tmp_path)
    module = import_plugin("plugins/cu_plugin_file.py" if relative else str(file))
    assert module.VALUE == 42
    assert sys.modules["cu_plugin_file"] is module  # importable again by name (sweep workers)
    assert import_plugin(file) is module


def test_a_package_folder_is_imported(tmp_path, clean_modules):
    _write(tmp_path / "cu_plugin_pkg" / "__init__.py", "from .kinds import VALUE\n")
    _write(tmp_path / "cu_plugin_pkg" / "kinds.py")
    assert import_plugin(tmp_path / "cu_plugin_pkg").VALUE == 42


def test_importing_registers_what_the_module_registers(tmp_path, clean_modules):
    from causalunlearn.models import MODELS, build_model

    text = (
        "from torch import nn\n"
        "from causalunlearn.models import register_model\n"
        "@register_model('cu-plugin-net')\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes, input_shape):\n"
        "        super().__init__()\n"
        "        self.head = nn.Linear(64, num_classes)\n"
    )
    with MODELS.scratch():
        import_plugins([_write(tmp_path / "cu_plugin_net.py", text)])
        assert build_model("cu-plugin-net", 10, (1, 8, 8)).head.out_features == 10


@pytest.mark.parametrize(
    ("spec", "files", "words"),
    [
        ("cu_plugin_missing", {}, "no module named 'cu_plugin_missing'"),
        ("missing/cu_plugin.py", {}, "no such file"),
        ("notes.txt", {"notes.txt": "x"}, "not a Python file"),
        ("folder", {"folder/a.py": "x = 1"}, "without __init__.py"),
        ("bad-name.py", {"bad-name.py": "x = 1"}, "not a valid module name"),
        ("json.py", {"json.py": "x = 1"}, "already taken"),
        ("cu_plugin_raises.py", {"cu_plugin_raises.py": "1 / 0"}, "ZeroDivisionError"),
        ("cu_plugin_syntax.py", {"cu_plugin_syntax.py": "def (:"}, "SyntaxError"),
        ("cu_plugin_needs.py", {"cu_plugin_needs.py": "import cu_nowhere"}, "cu_nowhere"),
        ("", {}, "empty module name"),
    ],
)
def test_every_failure_is_import_failed(tmp_path, monkeypatch, clean_modules, spec, files, words):
    for name, text in files.items():
        _write(tmp_path / name, text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CausalUnlearnError) as info:
        import_plugin(spec)
    assert info.value.code == "import-failed"
    assert words in str(info.value)
    assert info.value.hint


def test_the_unknown_kind_hint_names_both_ways():
    assert "--import" in IMPORT_HINT and "path/to/file.py" in IMPORT_HINT
    assert "in Python" in IMPORT_HINT
