"""Model import into the shared cache: local folder, .zip, and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from InnerEarSegmentationLib.errors import Cancelled, ModelError
from InnerEarSegmentationLib.model import load_model
from InnerEarSegmentationLib.model_store import cached_models, import_model, models_dir
from InnerEarSegmentationLib.progress import Progress


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path):
    """Serves tmp_path/www over HTTP on 127.0.0.1 from a background thread; yields (folder, url)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _zip(folder: Path, target: Path, prefix: str = "tiny/") -> Path:
    with zipfile.ZipFile(target, "w") as bundle:
        for path in folder.iterdir():
            bundle.write(path, prefix + path.name)
    return target


def _cache_is_clean(root: Path) -> bool:
    """Nothing half-imported left behind: no staging folders."""
    return not [p for p in models_dir(root).iterdir() if p.name.startswith(".import-")]


def test_download_manifest_and_stages_from_http(served, tiny_model, tmp_path):
    www, url = served
    shutil.copytree(tiny_model, www / "tiny")
    fractions = []
    installed = import_model(f"{url}/tiny/manifest.json", root=tmp_path / "cache",
                             progress=Progress(lambda f, m: fractions.append(f)))
    assert installed.parent == models_dir(tmp_path / "cache")
    assert load_model(installed).id == "tiny-test-model"
    assert cached_models(tmp_path / "cache") == [installed]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert _cache_is_clean(tmp_path / "cache")


def test_download_zip_from_http_and_reimport_is_idempotent(served, tiny_model, tmp_path):
    www, url = served
    _zip(tiny_model, www / "tiny.zip")
    first = import_model(f"{url}/tiny.zip", root=tmp_path / "cache")
    second = import_model(f"{url}/tiny.zip", root=tmp_path / "cache")
    assert first == second and len(cached_models(tmp_path / "cache")) == 1


def test_tampered_file_over_http_is_refused_and_nothing_installed(served, tiny_model, tmp_path):
    www, url = served
    shutil.copytree(tiny_model, www / "tiny")
    with open(www / "tiny" / "stage2.onnx", "ab") as stream:
        stream.write(b"\0")
    with pytest.raises(ModelError, match="stage2.onnx does not match its manifest"):
        import_model(f"{url}/tiny/manifest.json", root=tmp_path / "cache")
    assert cached_models(tmp_path / "cache") == []
    assert _cache_is_clean(tmp_path / "cache")


def test_missing_url_gives_a_clear_error(served, tmp_path):
    _, url = served
    with pytest.raises(ModelError, match="Could not download"):
        import_model(f"{url}/nothing.zip", root=tmp_path / "cache")


def test_local_folder_and_zip_import(tiny_model, tmp_path):
    from_folder = import_model(tiny_model, root=tmp_path / "a")
    from_zip = import_model(_zip(tiny_model, tmp_path / "m.zip"), root=tmp_path / "b")
    assert load_model(from_folder).name == load_model(from_zip).name


def test_unsafe_zip_and_odd_file_names_are_refused(tiny_model, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as bundle:
        bundle.writestr("../outside.txt", "x")
    with pytest.raises(ModelError, match="unsafe path"):
        import_model(evil, root=tmp_path / "cache")
    assert not (tmp_path / "cache" / "outside.txt").exists()


def test_cancel_stops_a_download(served, tiny_model, tmp_path):
    www, url = served
    _zip(tiny_model, www / "tiny.zip")
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        import_model(f"{url}/tiny.zip", root=tmp_path / "cache", progress=progress)
    assert cached_models(tmp_path / "cache") == []
