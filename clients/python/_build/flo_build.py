"""A tiny in-tree PEP 517/660 build backend using only the standard library.

Why not setuptools: building a wheel with setuptools older than 70.1 needs the
separate ``wheel`` package, which machines without network access often lack,
and then ``pip install ./clients/python`` fails. This backend needs nothing
beyond the standard library (``requires = []``), so pip installs the SDK
offline, with or without build isolation.

It packages ``src/flo`` (every ``*.py`` plus ``py.typed``) as a pure-Python
``py3-none-any`` wheel, builds an sdist of the project directory, and supports
editable installs through a ``.pth`` file. Metadata comes from the
``[project]`` table of ``pyproject.toml``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "flo"


def _project() -> dict[str, Any]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        data = f.read()
    try:
        import tomllib  # Python 3.11+

        return dict(tomllib.loads(data.decode())["project"])
    except ImportError:  # Python 3.10: the few plain string fields this backend reads
        text = data.decode()
        section = text.split("[project]", 1)[1].split("\n[", 1)[0]
        return {m.group(1): m.group(2) for m in re.finditer(r'^([\w-]+)\s*=\s*"([^"]*)"', section, re.M)}


def _names() -> tuple[str, str, str]:
    p = _project()
    name, version = p["name"], p["version"]
    return name, version, f"{name.replace('-', '_')}-{version}"


def _metadata() -> str:
    p = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
        f"Summary: {p.get('description', '')}",
        f"Requires-Python: {p.get('requires-python', '>=3.10')}",
        "License: MIT",
        "Classifier: Framework :: AsyncIO",
        "Classifier: Programming Language :: Python :: 3",
        "Classifier: Typing :: Typed",
        "Description-Content-Type: text/markdown",
        "",
    ]
    readme = os.path.join(ROOT, "README.md")
    body = open(readme, encoding="utf-8").read() if os.path.exists(readme) else ""
    return "\n".join(lines) + "\n" + body


def _wheel_file() -> str:
    return "Wheel-Version: 1.0\nGenerator: flo_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _package_files() -> list[tuple[str, str]]:
    """(archive path, file path) of every file that goes into the wheel."""
    src = os.path.join(ROOT, "src", PACKAGE)
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith(".py") or fn == "py.typed":
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, os.path.join(ROOT, "src")).replace(os.sep, "/")
                out.append((rel, full))
    return out


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory: str, entries: list[tuple[str, bytes]]) -> str:
    _, _, base = _names()
    dist_info = f"{base}.dist-info"
    entries = entries + [
        (f"{dist_info}/METADATA", _metadata().encode()),
        (f"{dist_info}/WHEEL", _wheel_file().encode()),
    ]
    record = [_record_line(p, d) for p, d in entries] + [f"{dist_info}/RECORD,,"]
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    filename = f"{base}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in entries:
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return filename


# --- PEP 517 hooks ---------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings: Optional[dict[str, Any]] = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[dict[str, Any]] = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[dict[str, Any]] = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Optional[dict[str, Any]] = None) -> str:
    _, _, base = _names()
    dist_info = os.path.join(metadata_directory, f"{base}.dist-info")
    os.makedirs(dist_info, exist_ok=True)
    with open(os.path.join(dist_info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    with open(os.path.join(dist_info, "WHEEL"), "w", encoding="utf-8") as f:
        f.write(_wheel_file())
    return f"{base}.dist-info"


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(
    wheel_directory: str, config_settings: Optional[dict[str, Any]] = None, metadata_directory: Optional[str] = None
) -> str:
    entries = []
    for rel, full in _package_files():
        with open(full, "rb") as f:
            entries.append((rel, f.read()))
    return _write_wheel(wheel_directory, entries)


def build_editable(
    wheel_directory: str, config_settings: Optional[dict[str, Any]] = None, metadata_directory: Optional[str] = None
) -> str:
    pth = (os.path.join(ROOT, "src") + "\n").encode()
    return _write_wheel(wheel_directory, [(f"__editable__.{PACKAGE}.pth", pth)])


def build_sdist(sdist_directory: str, config_settings: Optional[dict[str, Any]] = None) -> str:
    _, _, base = _names()
    filename = f"{base}.tar.gz"
    skip = {"__pycache__", "build", "dist", ".git"}
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.endswith(".egg-info"))
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                tf.add(full, arcname=os.path.join(base, os.path.relpath(full, ROOT)))
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        data = _metadata().encode()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return filename
