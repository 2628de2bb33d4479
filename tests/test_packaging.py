"""What a wheel and an sdist built from this checkout contain, read from ``pyproject.toml``
and ``MANIFEST.in`` with setuptools' own rules (no build: the suite runs offline). Users
install the wheel, so a data file the code opens must be in its package data."""

import fnmatch
import pathlib
import re
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
pytestmark = pytest.mark.skipif(
    not PYPROJECT.exists(), reason="needs the source tree's pyproject.toml (not in an installed package)"
)


def _config():
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def test_package_data_globs_match_every_data_file():
    globs = _config()["tool"]["setuptools"]["package-data"]["brainmass_eqx"]
    package = ROOT / "brainmass_eqx"
    data = [
        p.relative_to(package).as_posix()
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc")
    ]
    assert data, "no data files found: the package's datasets and kernels should be"
    missed = [f for f in data if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert not missed, f"not in [tool.setuptools.package-data] (so not in the wheel): {missed}"


def test_sdist_manifest_carries_what_the_tests_import_and_read():
    from setuptools.command.egg_info import FileList

    manifest = ROOT / "MANIFEST.in"
    files = FileList()
    files.findall(str(ROOT))
    if manifest.exists():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                files.process_template_line(line)
    included = {pathlib.PurePath(f).as_posix() for f in files.files}
    tests = ROOT / "tests"
    needed = [
        p.relative_to(ROOT).as_posix()
        for p in [tests / "conftest.py", *tests.glob("_*.py"), *(tests / "data").rglob("*"),
                  *(ROOT / "docs").rglob("*.md"), *(ROOT / "notebooks").glob("*.ipynb")]
        if p.is_file() and "__pycache__" not in p.parts
    ]
    missing = [f for f in needed if f not in included]
    assert not missing, f"the sdist's tests would lack {len(missing)} files, e.g. {missing[:3]}: list them in MANIFEST.in"


def test_build_backend_reads_the_license_expression():
    # `license = "Apache-2.0"` (a PEP 639 SPDX string) is refused by setuptools < 77.0.1 with
    # "`project.license` must be valid exactly by one definition": the build-system floor
    # must be at least that, or `pip install --no-build-isolation` / offline builds fail.
    config = _config()
    if not isinstance(config["project"].get("license"), str):
        pytest.skip("license is not a PEP 639 string")
    (spec,) = [r for r in config["build-system"]["requires"] if re.match(r"setuptools\b", r)]
    floor = re.search(r">=\s*([\d.]+)", spec)
    assert floor, f"build-system requires {spec!r}: give setuptools a floor"
    assert tuple(int(x) for x in floor.group(1).split(".")) >= (77, 0, 1), spec
