"""The stages of the data-engineering lifecycle and its undercurrents, as the DAGs label them.

Input: nothing (pure declarations, cheap to import at DAG parse time).
Output: per stage its Airflow tag (the DAG list groups by it), the README section and the
docs/ page that explain it; ``tags()`` and ``doc_footer()`` for the DAG files. The README
anchors are plain text in the DAG docs (a relative link would resolve against the Airflow UI);
tests/pipeline/test_dags.py checks that every anchor and page exists.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    tag: str
    title: str
    readme_anchor: str  # the README heading's GitHub anchor
    doc: str  # the docs/ page, relative to the repository root


STAGES = {
    "source": Stage("stage:source", "Sources", "sources", "docs/sources.md"),
    "ingestion": Stage("stage:ingestion", "Ingestion", "ingestion", "docs/ingestion.md"),
    "storage": Stage("stage:storage", "Storage", "storage", "docs/lake-layout.md"),
    "transformation": Stage("stage:transformation", "Transformation", "transformation", "docs/transformation.md"),
    "serving": Stage("stage:serving", "Serving", "serving", "docs/serving.md"),
    "dataops": Stage("undercurrent:dataops", "Undercurrents: DataOps and observability", "undercurrents",
                     "docs/undercurrents.md"),
}


def tags(*stages: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The DAG's tags: ``lifecycle``, one per stage it belongs to, then technology tags."""
    return ["lifecycle", *(STAGES[s].tag for s in stages), *extra]


def doc_footer(*stages: str) -> str:
    """Markdown appended to a DAG's ``doc_md``: where the README and docs/ explain its stage."""
    lines = [f"- **{STAGES[s].title}** (`{STAGES[s].tag}`): README section `README.md#{STAGES[s].readme_anchor}`, "
             f"details in `{STAGES[s].doc}`" for s in stages]
    return "\n\n#### Lifecycle stage\n" + "\n".join(lines) + "\n"
