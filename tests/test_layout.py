"""The code stays a place a newcomer can find their way in: the README's module map is true, modules and
functions stay short, and no code outside the registry decides by a model's name."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bayes_intl"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))


def test_readme_module_map_names_every_module_and_no_other():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Module map", 1)[1].split("\n## ", 1)[0]
    mapped = set(re.findall(r"^\| `(\w+)\.py`", section, flags=re.M))
    assert mapped == {p.stem for p in modules()}


def test_no_module_over_600_lines_and_no_function_over_80():
    long_modules = [p.name for p in modules() if len(p.read_text().splitlines()) > MAX_MODULE_LINES]
    long_functions = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.name}:{node.name} ({length} lines)")
    assert long_modules == [] and long_functions == []


def test_only_the_registry_knows_models_by_name():
    """No `spec.model ==` / `spec.model in` dispatch, and no branching on which variables a posterior holds."""
    names = re.compile(r"\.model\s*(==|!=|in\b|not in\b)")
    contents = re.compile(r"""["'](slope|group_slope|group_intercept|capinno_factor)["']\s+(not\s+)?in\s+\w*(posterior|idata)""")
    offenders = [f"{p.name}:{i}" for p in modules() if p.name != "registry.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if names.search(line) or contents.search(line)]
    assert offenders == []


def test_statsmodels_and_matplotlib_each_have_one_owner():
    owners = {"statsmodels": {"baselines.py"}, "matplotlib": {"plots.py"}}
    for library, allowed in owners.items():
        pattern = re.compile(rf"^\s*(import|from) {library}\b", flags=re.M)
        users = {p.name for p in modules() if pattern.search(p.read_text())}
        assert users <= allowed, library
