"""Questions to a run's trials table: filter, sort, top-k, and output as a table, CSV or JSON.

A filter is a small language, parsed here and never evaluated as Python:

    where      := condition (("and" | "or") condition)*     "and" binds tighter than "or"
    condition  := "not" condition | "(" where ")" | column op value
    op         := == | = | != | >= | <= | > | <
    value      := number | 'text' | "text" | true | false | a bare word (text)

A column is any column of the trials table (`param.model.depth`, `accuracy_mean`, `status`,
`seconds`, ...); a parameter may be named without its `param.` prefix. The parsed form becomes a
pyarrow compute expression, so the comparison semantics are Arrow's: a comparison with a null
or NaN value is not true, and such rows drop out.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_spaces.domains import did_you_mean
from search_spaces.errors import ArchsearchError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc

FORMATS = ("table", "csv", "json")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>==|!=|>=|<=|=|>|<)
      | (?P<paren>[()])
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<word>[A-Za-z_][\w.\-]*)
    )""",
    re.VERBOSE,
)
_COMPARE = {
    "==": "equal",
    "=": "equal",
    "!=": "not_equal",
    ">=": "greater_equal",
    "<=": "less_equal",
    ">": "greater",
    "<": "less",
}


class QueryError(ArchsearchError, ValueError):
    """A --where, --sort or --format the trials table cannot answer."""


@dataclass(frozen=True)
class _Token:
    kind: str  # op, paren, string, number, word
    text: str
    at: int  # 1-based character position, for messages


def parse_where(text: str, schema: pa.Schema) -> pc.Expression:
    """The pyarrow expression for a `--where` filter over a table with `schema`.

    Raises:
        QueryError: The text does not follow the grammar, names an unknown column, or compares
            a column with a value of another kind; the message names what and where.
    """
    tokens = _tokenize(text)
    if not tokens:
        raise QueryError('--where: empty filter; write e.g. "param.model.depth >= 2"')
    parser = _Parser(tokens, schema, text)
    expression = parser.disjunction()
    if parser.peek() is not None:
        extra = parser.peek()
        raise QueryError(
            f"--where: unexpected {extra.text!r} at character {extra.at}; join conditions "
            "with 'and' or 'or'"
        )
    return expression


def resolve_column(name: str, schema: pa.Schema, *, option: str) -> str:
    """`name` as a column of `schema`, allowing a parameter without its `param.` prefix."""
    if name in schema.names:
        return name
    if f"param.{name}" in schema.names:
        return f"param.{name}"
    hint = did_you_mean(name, schema.names) or did_you_mean(
        name, [n.removeprefix("param.") for n in schema.names]
    )
    raise QueryError(
        f"{option}: no column {name!r} in the trials table{hint}; 'archsearch results RUN_DIR "
        "--format csv' shows every column"
    )


def select_trials(
    run_dir: Path,
    *,
    where: str | None = None,
    sort: str | None = None,
    descending: bool = False,
    top: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], pa.Schema]:
    """(the selected rows in order, every trial ranked by the objective, the table's schema).

    Without `sort` rows come best objective first; with it, by that column (ascending unless
    `descending`), missing and NaN values last either way, ties in ranking order.
    """
    from cluster.results import ranked_trials
    from cluster.rundir import load_run_spec
    from cluster.store import read_table

    spec = load_run_spec(run_dir)
    table = read_table(run_dir, "trials")
    ranked = ranked_trials(run_dir, spec)
    if spec.multi_objective:
        table, ranked = _with_pareto(table, ranked, spec)
    if top is not None and top < 0:
        raise QueryError(f"--top: {top} is negative; give how many trials to show, e.g. 10")

    rows = ranked
    if where is not None:
        kept = {r["trial_id"] for r in table.filter(parse_where(where, table.schema)).to_pylist()}
        rows = [row for row in ranked if row["trial_id"] in kept]
    if sort is not None:
        column = resolve_column(sort, table.schema, option="--sort")
        present = [row for row in rows if not _missing(row.get(column))]
        # A stable sort: ties keep their ranking order.
        present.sort(key=lambda row: row[column], reverse=descending)
        rows = present + [row for row in rows if _missing(row.get(column))]
    return (rows if top is None else rows[:top]), ranked, table.schema


def _with_pareto(
    table: pa.Table, ranked: list[dict[str, Any]], spec: Any
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The trials and ranked rows with a computed `pareto` column (true on the Pareto set)."""
    import pyarrow as pa

    from cluster.results import pareto_trials

    front = {row["trial_id"] for row in pareto_trials(ranked, spec)}
    marks = [trial_id in front for trial_id in table.column("trial_id").to_pylist()]
    table = table.append_column(pa.field("pareto", pa.bool_()), pa.array(marks, pa.bool_()))
    return table, [{**row, "pareto": row["trial_id"] in front} for row in ranked]


def format_trials(
    rows: list[dict[str, Any]],
    *,
    fmt: str,
    run_dir: Path,
    ranked: list[dict[str, Any]],
    schema: pa.Schema,
    extra: Sequence[str] = (),
) -> str:
    """`rows` as a plain-text `table` (the ranking's columns), or `csv` / `json` (every column)."""
    if fmt == "table":
        from cluster.results import status_counts, trials_table
        from cluster.rundir import load_run_spec

        title = (
            f"{run_dir}: {len(rows)} of {len(ranked)} trials shown "
            f"({status_counts(ranked)} in all)"
        )
        return trials_table(rows, load_run_spec(run_dir), ranked=ranked, title=title, extra=extra)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=schema.names, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv_value(v) for k, v in row.items()} for row in rows)
        return buffer.getvalue().rstrip("\n")
    if fmt == "json":
        clean = [{k: _json_value(v) for k, v in row.items()} for row in rows]
        return json.dumps(clean, indent=2, allow_nan=False)
    raise QueryError(f"--format: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


# -- parsing ------------------------------------------------------------------------------------


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            where = len(text[position:]) - len(text[position:].lstrip()) + position
            raise QueryError(
                f"--where: cannot read {text[where : where + 12]!r} at character {where + 1}; "
                'write conditions as column op value, e.g. "param.model.depth >= 2"'
            )
        kind = match.lastgroup or ""
        start = match.start(kind)
        tokens.append(_Token(kind, match.group(kind), start + 1))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over the grammar in the module docstring."""

    def __init__(self, tokens: list[_Token], schema: pa.Schema, text: str) -> None:
        self._tokens = tokens
        self._schema = schema
        self._text = text
        self._next = 0

    def peek(self) -> _Token | None:
        return self._tokens[self._next] if self._next < len(self._tokens) else None

    def _take(self, what: str) -> _Token:
        token = self.peek()
        if token is None:
            raise QueryError(f"--where: {self._text!r} ends early; expected {what}")
        self._next += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() == word:
            self._next += 1
            return True
        return False

    def disjunction(self) -> pc.Expression:
        expression = self._conjunction()
        while self._keyword("or"):
            expression = expression | self._conjunction()
        return expression

    def _conjunction(self) -> pc.Expression:
        expression = self._condition()
        while self._keyword("and"):
            expression = expression & self._condition()
        return expression

    def _condition(self) -> pc.Expression:
        if self._keyword("not"):
            return ~self._condition()
        token = self.peek()
        if token is not None and token.text == "(":
            self._next += 1
            inner = self.disjunction()
            closing = self._take("')'")
            if closing.text != ")":
                raise QueryError(
                    f"--where: expected ')' at character {closing.at}, got {closing.text!r}"
                )
            return inner
        return self._comparison()

    def _comparison(self) -> pc.Expression:
        import pyarrow.compute as pc

        name = self._take("a column name")
        if name.kind != "word":
            raise QueryError(
                f"--where: expected a column name at character {name.at}, got {name.text!r}"
            )
        column = resolve_column(name.text, self._schema, option="--where")
        op = self._take(f"a comparison (== != >= <= > <) after {name.text}")
        if op.kind != "op":
            raise QueryError(
                f"--where: expected a comparison (== != >= <= > <) after {name.text} at "
                f"character {op.at}, got {op.text!r}"
            )
        value = self._value(self._take(f"a value after {name.text} {op.text}"), column)
        return getattr(pc, _COMPARE[op.text])(pc.field(column), pc.scalar(value))

    def _value(self, token: _Token, column: str) -> Any:
        import pyarrow as pa

        kind = self._schema.field(column).type
        if token.kind in ("op", "paren"):
            raise QueryError(
                f"--where: expected a value for {column} at character {token.at}, got "
                f"{token.text!r}"
            )
        text = token.text[1:-1] if token.kind == "string" else token.text

        if pa.types.is_boolean(kind):
            if token.kind == "word" and text.lower() in ("true", "false"):
                return text.lower() == "true"
            wanted = "true or false"
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
            if token.kind == "number":
                number = float(text)
                return int(number) if number.is_integer() and pa.types.is_integer(kind) else number
            wanted = "a number"
        else:
            return text  # text columns compare with the value's text: status == completed
        raise QueryError(
            f"--where: {column} holds {kind} values, so compare it with {wanted}, not "
            f"{token.text} (character {token.at})"
        )


# -- sorting and output -------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return "" if value is None else value


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
