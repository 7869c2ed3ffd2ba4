"""environment.yml (conda) and pyproject.toml (pip) pin the same packages, exactly.

The committed notebooks are validated against outputs produced with these versions, so
the two ways of installing the book must not drift apart.
"""

import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from ropelib.paths import ROOT


def _pins(requirements):
    """{canonical name: exact version} for requirement strings; each must be an exact == pin."""
    pins = {}
    for text in requirements:
        requirement = Requirement(text)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{text!r} is not an exact pin"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{name} is pinned twice"
        pins[name] = specifiers[0].version
    return pins


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _environment():
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _pip_section(environment):
    sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one pip: section"
    return [line for line in sections[0] if not line.startswith("-")]  # "-e ." installs the project


def test_environment_pins_equal_pyproject_pins():
    project = _pyproject()
    expected = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    actual = _pins(_pip_section(_environment()))
    missing = {n: v for n, v in expected.items() if n not in actual}
    extra = {n: v for n, v in actual.items() if n not in expected}
    different = {n: (expected[n], actual[n]) for n in expected.keys() & actual.keys() if expected[n] != actual[n]}
    assert not (missing or extra or different), (
        f"environment.yml vs pyproject.toml: missing {missing}, extra {extra}, "
        f"different (pyproject, environment) {different}"
    )


def test_torch_is_pinned_to_the_cpu_wheel_version():
    assert _pins(_pyproject()["dependencies"])["torch"] == "2.13.0"


def test_conda_python_satisfies_requires_python():
    conda = [d for d in _environment()["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert len(conda) == 1, "environment.yml must pin python once"
    version = conda[0].split("=", 1)[1].lstrip("=")
    assert SpecifierSet(_pyproject()["requires-python"]).contains(version + ".0"), conda[0]
    assert _environment()["channels"] == ["conda-forge"]
