"""Benchmarks with exact metrics on the shapes world: one resumable runner, suites described as data.

- :mod:`.suites`: what is generated (shapes boxes and masks, relation prompts, competence prompts) and its seeds
- :mod:`.runner`: the one generate -> write -> resume loop; damaged images are said and redone
- :mod:`.shapes_bench`, :mod:`.relations`, :mod:`.competence`: each benchmark's scoring and results
- :mod:`.reports`: markdown tables, ``report.md``, ``grid.png``; :mod:`.memory`: peak memory of a block
- :mod:`.resume`: ``run.json`` (what made a folder's images); :mod:`.files`: atomic, umask-respecting writes
"""

from __future__ import annotations

from ..spec import MethodSpec, option_value, split_methods
from .competence import run_competence
from .files import write_bytes, write_json, write_text
from .memory import PeakMemory
from .relations import (
    EXAMPLE_TILE,
    RELATION_EXAMPLES,
    RELATION_FAILURES,
    chance_relation_rate,
    layout_relation,
    relation_score,
    run_relation_bench,
)
from .reports import COLUMNS, phrase_form_table, relation_table, results_table, write_shapes_report
from .resume import BenchResumeError, check_resume, model_fingerprint, sampling_defaults
from .runner import generate
from .shapes_bench import run_shapes_bench
from .suites import (
    RELATION_PHRASES,
    SUITE_STRIDE,
    Suite,
    check_phrase_forms,
    competence_suite,
    relation_prompts,
    relation_suite,
    shapes_layout_suite,
    shapes_suite,
)

__all__ = [
    "COLUMNS",
    "EXAMPLE_TILE",
    "RELATION_EXAMPLES",
    "RELATION_FAILURES",
    "RELATION_PHRASES",
    "SUITE_STRIDE",
    "BenchResumeError",
    "MethodSpec",
    "PeakMemory",
    "Suite",
    "chance_relation_rate",
    "check_phrase_forms",
    "check_resume",
    "competence_suite",
    "generate",
    "layout_relation",
    "model_fingerprint",
    "option_value",
    "phrase_form_table",
    "relation_prompts",
    "relation_score",
    "relation_suite",
    "relation_table",
    "results_table",
    "run_competence",
    "run_relation_bench",
    "run_shapes_bench",
    "sampling_defaults",
    "shapes_layout_suite",
    "shapes_suite",
    "split_methods",
    "write_bytes",
    "write_json",
    "write_shapes_report",
    "write_text",
]
