"""Chapter parameters: what a template declares, and checking values against it.

A chapter template (``chapters/<name>.ipynb``) has exactly one cell tagged
``parameters``. papermill's own parser (``PythonTranslator.inspect``) reads it; this
module adds types and valid ranges, taken from the default value and the comment.

Grammar of the parameters cell (one assignment per line)::

    name = default  # description [constraint]

- ``default`` is a Python literal: int, float, str, bool, or a list of one of those.
  The type of the default is the parameter's type (a ``name: float = 4`` annotation
  overrides it; an empty list needs one, e.g. ``lengths: list[int] = []``).
  An int is accepted where a float is declared (and becomes a float).
- ``description`` is required: one line saying what the parameter is.
- ``constraint`` ends the comment and is one of
    ``[lo, hi]``  a closed numeric range; ``(`` / ``)`` make an end open, and
                  ``inf`` / ``-inf`` leave it unbounded: ``(0, inf)``;
    ``[lo, hi] even``  the same, and the value must be even;
    ``{a, b, c}``  the value must be one of these;
    ``each in [lo, hi]`` / ``each in {a, b}``  for a list: every element must be.
  Numbers (int, float, and lists of them) must have a range; str and bool may
  have only a description (a str with a description only is free text, e.g. a path).
- The comment must not contain ``=`` (papermill would skip the line); the cell
  itself is checked so that no assignment goes unseen.
- Constraints across parameters are comment lines of the same cell (papermill ignores them)::

      # requires: <expression over parameter names>: <message>

  e.g. ``# requires: length == 0 or n_queries <= max(1, length // 4): n_queries needs that many
  positions in the last quarter of length``. The expression may use the cell's parameters,
  numbers and strings, arithmetic (+ - * / // %), comparisons, and / or / not, and
  ``len``, ``min``, ``max``, ``abs``; nothing else (checked when the template is read).
  :func:`validate` evaluates every one after the single-parameter checks, so a bad
  combination fails before any kernel starts.

Examples::

    length = 1024  # evaluation length in tokens [8, 131072]
    method = "pi"  # RoPE extension {rope, pi, ntk, yarn}
    lengths = [128, 256]  # evaluation lengths, each in [8, 131072]
    retrain = False  # retrain instead of loading
    model = "organism:base"  # organism name or local HF model path

Every error is a one-line :class:`ParameterError` naming the parameter and what was
expected; nothing here executes a notebook or writes a file.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

_SCALARS = {"int": int, "float": float, "str": str, "bool": bool}
_CONSTRAINT = re.compile(
    r"^(?P<description>.*?)[\s,;:]*(?P<each>\beach in\s+)?"
    r"(?P<spec>[\[(][^\[\](){},]*,[^\[\](){},]*[\])]|\{[^{}]*\})(?:\s+(?P<even>even))?\s*$"
)


class ParameterError(ValueError):
    """A one-line message about one parameter (or one template's parameters cell)."""


@dataclass(frozen=True)
class Parameter:
    """One declared parameter of a chapter template."""

    name: str
    type: str  # "int", "float", "str", "bool", or "list[<scalar>]"
    default: object
    description: str
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    even: bool = False

    @property
    def element_type(self) -> str:
        return self.type[5:-1] if self.type.startswith("list[") else self.type

    @property
    def has_range(self) -> bool:
        return self.choices is not None or math.isfinite(self.low) or math.isfinite(self.high)

    def expected(self) -> str:
        """What a valid value looks like, e.g. ``an int in [4, 512], even``."""
        element = self.element_type
        article = "an" if element == "int" else "a"
        if self.choices is not None:
            rule = "one of {" + ", ".join(map(str, self.choices)) + "}"
        elif self.has_range:
            rule = "in " + "(["[not self.low_open] + f"{_fmt(self.low)}, {_fmt(self.high)}" + ")]"[not self.high_open]
        else:
            rule = ""
        rule += ", even" if self.even else ""
        if self.type.startswith("list["):
            return f"a list of {element}" + (f", each {rule}" if rule else "")
        return f"{article} {element}" + (f" {rule}" if rule else "")

    def check(self, value, chapter: str = ""):
        """Return ``value`` normalised to the declared type, or raise ParameterError."""
        if self.type.startswith("list["):
            if not isinstance(value, (list, tuple)):
                self._fail(value, chapter, "of the wrong type")
            return [self._check_element(v, value, chapter) for v in value]
        return self._check_element(value, value, chapter)

    def _check_element(self, element, value, chapter):
        kind = self.element_type
        ok_types = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}[kind]
        # bool is an int subclass in Python; True is never a valid length or factor
        if not isinstance(element, ok_types) or (kind in ("int", "float") and isinstance(element, bool)):
            self._fail(value, chapter, "of the wrong type")
        if kind == "float":
            element = float(element)
            if math.isnan(element):
                self._fail(value, chapter, "not a number")
        if self.choices is not None and element not in self.choices:
            self._fail(value, chapter, "not a valid choice")
        if kind in ("int", "float"):
            below = element <= self.low if self.low_open else element < self.low
            above = element >= self.high if self.high_open else element > self.high
            if below or above:
                self._fail(value, chapter, "out of range")
        if self.even and element % 2:
            self._fail(value, chapter, "not even")
        return element

    def _fail(self, value, chapter, problem):
        where = f"{chapter}: " if chapter else ""
        shown = repr(value).replace("\n", " ")
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ParameterError(
            f"{where}parameter {self.name!r} = {shown} is {problem}; expected {self.expected()}"
        )


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if float(x).is_integer() and abs(x) < 1e7:
        return str(int(x))
    return f"{x:.6g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")  # 1e9, 2.5e-5


def _number(text: str, where: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ParameterError(f"{where}: {text.strip()!r} in the range is not a number") from None


def _type_of(default, annotation: str, where: str) -> str:
    if annotation not in ("None", ""):
        annotation = annotation.replace(" ", "")
        element = annotation[5:-1] if annotation.startswith("list[") and annotation.endswith("]") else annotation
        if element not in _SCALARS:
            raise ParameterError(f"{where}: unsupported annotation {annotation!r}; use int, float, str, bool or list[...]")
        return annotation
    if isinstance(default, list):
        kinds = {type(v).__name__ for v in default}
        if not default or not kinds <= set(_SCALARS) or (len(kinds) > 1 and kinds != {"int", "float"}):
            raise ParameterError(f"{where}: list default must be non-empty and of one type (or annotate list[...])")
        return "list[float]" if "float" in kinds else f"list[{kinds.pop()}]"
    kind = type(default).__name__
    if kind not in _SCALARS:
        raise ParameterError(f"{where}: default {default!r} must be an int, float, str, bool or list literal")
    return kind


def parse_declaration(name: str, annotation: str, default_source: str, comment: str, chapter: str = "") -> Parameter:
    """A :class:`Parameter` from papermill's (name, inferred_type_name, default, help)."""
    where = f"{chapter}: parameter {name!r}" if chapter else f"parameter {name!r}"
    try:
        default = ast.literal_eval(default_source)
    except (ValueError, SyntaxError):
        raise ParameterError(f"{where}: default {default_source!r} is not a Python literal") from None
    kind = _type_of(default, annotation, where)
    match = _CONSTRAINT.match(comment)
    description = (match.group("description") if match else comment).strip()
    fields: dict = {}
    if match:
        spec = match.group("spec")
        is_list = kind.startswith("list[")
        if bool(match.group("each")) != is_list:
            hint = "a list needs 'each in ...'" if is_list else "'each in' is only for lists"
            raise ParameterError(f"{where}: {hint}")
        if spec.startswith("{"):
            element = _SCALARS[kind[5:-1] if is_list else kind]
            items = [s.strip().strip("'\"") for s in spec[1:-1].split(",") if s.strip()]
            fields["choices"] = tuple(element(yaml.safe_load(s)) if element is not str else s for s in items)
        else:
            if (kind[5:-1] if is_list else kind) not in ("int", "float"):
                raise ParameterError(f"{where}: a range {spec} is only for numbers; use {{a, b}} for choices")
            bounds = spec[1:-1].split(",")
            fields.update(low=_number(bounds[0], where), high=_number(bounds[1], where),
                          low_open=spec[0] == "(", high_open=spec[-1] == ")")
        fields["even"] = bool(match.group("even"))
    param = Parameter(name=name, type=kind, default=default, description=description, **fields)
    if not description:
        raise ParameterError(f"{where}: the comment must describe it (# what it is [range])")
    if param.even and param.element_type != "int":
        raise ParameterError(f"{where}: 'even' is only for ints")
    if param.element_type in ("int", "float") and not param.has_range:
        raise ParameterError(f"{where}: a number needs a range in its comment, e.g. [1, 64] or (0, inf)")
    param.check(default, chapter)  # the template's own default must be valid
    return param


def _assigned_names(source: str) -> list[str]:
    """Every top-level name the cell assigns, read with Python's own parser."""
    names = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


@dataclass(frozen=True)
class Requirement:
    """A constraint across parameters: ``expression`` must be true; ``message`` says why."""

    expression: str
    message: str


class Declarations(dict):
    """name -> :class:`Parameter`, in cell order, and the cell's :class:`Requirement` s (``requires``)."""

    requires: tuple = ()


_REQUIRES = re.compile(r"^\s*#\s*requires:\s*(?P<expression>.+?):\s+(?P<message>\S.*)$")
_FUNCTIONS = {"len": len, "min": min, "max": max, "abs": abs}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp,
            ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Compare, ast.Eq, ast.NotEq, ast.Lt,
            ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Name, ast.Load, ast.Constant, ast.Call, ast.List,
            ast.Tuple, ast.IfExp)


def _requirement(expression: str, message: str, names, chapter: str) -> Requirement:
    """Parse and check one ``# requires:`` line: only :data:`_ALLOWED` syntax, known names, known functions."""
    where = f"{chapter}: " if chapter else ""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise ParameterError(f"{where}'# requires: {expression}' is not an expression ({error.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ParameterError(f"{where}'# requires: {expression}': {type(node).__name__} is not allowed")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS):
            raise ParameterError(f"{where}'# requires: {expression}': only {', '.join(_FUNCTIONS)} may be called")
        if isinstance(node, ast.Name) and node.id not in names and node.id not in _FUNCTIONS:
            raise ParameterError(f"{where}'# requires: {expression}': {node.id!r} is no parameter of this chapter")
    return Requirement(expression, message.strip())


def requirements(source: str, names, chapter: str = "") -> tuple[Requirement, ...]:
    """Every ``# requires:`` line of a parameters cell, checked against the declared ``names``."""
    found = []
    for line in source.splitlines():
        if (match := _REQUIRES.match(line)):
            found.append(_requirement(match["expression"], match["message"], names, chapter))
        elif re.match(r"^\s*#\s*requires\b", line):
            raise ParameterError(f"{chapter}: cannot read {line.strip()!r}; expected '# requires: EXPRESSION: message'")
    return tuple(found)


def check_requirements(requires, values: dict, chapter: str = "") -> None:
    """Raise a one-line :class:`ParameterError` for the first requirement ``values`` break."""
    for requirement in requires:
        tree = ast.parse(requirement.expression, mode="eval")
        used = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in values})
        if not eval(compile(tree, "<requires>", "eval"), {"__builtins__": {}}, {**_FUNCTIONS, **values}):  # noqa: S307 (checked syntax)
            given = ", ".join(f"{n}={values[n]!r}" for n in used)
            raise ParameterError(f"{chapter + ': ' if chapter else ''}{requirement.message} ({given}; requires "
                                 f"{requirement.expression})")


def declared(template: Path) -> Declarations:
    """The parameters declared by ``template`` (a path to a chapter .ipynb), in cell order, with its
    ``# requires:`` constraints as ``.requires``."""
    from papermill.iorw import load_notebook_node
    from papermill.translators import PythonTranslator
    from papermill.utils import find_first_tagged_cell_index

    chapter = Path(template).stem
    nb = load_notebook_node(str(template))  # papermill's loader: the notebook exactly as it will execute it
    index = find_first_tagged_cell_index(nb, "parameters")
    if index < 0:
        raise ParameterError(f"{chapter}: no cell tagged 'parameters'")
    cell = nb.cells[index]
    found = PythonTranslator.inspect(cell)
    missed = [n for n in _assigned_names(cell.source) if n not in {p.name for p in found}]
    if missed:
        raise ParameterError(
            f"{chapter}: papermill cannot read the parameters cell line for {missed[0]!r} "
            "(one 'name = literal  # comment' per line, no '=' in the comment)"
        )
    params = Declarations()
    for p in found:
        if p.name in params:
            raise ParameterError(f"{chapter}: parameter {p.name!r} is assigned twice")
        params[p.name] = parse_declaration(p.name, p.inferred_type_name, p.default, p.help, chapter)
    params.requires = requirements(cell.source, params, chapter)
    return params


def validate(declarations: dict[str, Parameter], given: dict, chapter: str = "") -> dict:
    """All parameters with ``given`` values checked and defaults filled in, in declared order; then the
    template's constraints across parameters (``declarations.requires``)."""
    where = f"{chapter}: " if chapter else ""
    for name in given:
        if name not in declarations:
            known = ", ".join(declarations) or "none"
            raise ParameterError(f"{where}unknown parameter {name!r}; this chapter declares: {known}")
    values = {
        name: p.check(given[name], chapter) if name in given else p.default
        for name, p in declarations.items()
    }
    check_requirements(getattr(declarations, "requires", ()), values, chapter)
    return values


def from_cli(declarations: dict[str, Parameter], name: str, text: str, chapter: str = ""):
    """Turn the string of ``-p NAME VALUE`` into a value of the declared type (unchecked)."""
    if name not in declarations:
        validate(declarations, {name: None}, chapter)  # raises the unknown-name error
    param = declarations[name]
    if param.type == "str":
        return text  # as typed: YAML would turn "yes" or "null" into something else
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if param.element_type == "float":
        # YAML 1.1 reads "1e6" as a string; Python's float() does not
        def to_float(v):
            try:
                return float(v) if isinstance(v, str) else v
            except ValueError:
                return v
        value = [to_float(v) for v in value] if isinstance(value, list) else to_float(value)
    return value
