"""What an export says about itself: ``metadata.json`` (the summary ``export()`` returns) and a
``README.md`` for people."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from labeler.datasets.splits import SPLITS, SplitPlan
from labeler.datasets.writer import ExportRun, Writer
from labeler.store import mask_url, model_version_rows


#: what each --include writes, for the README
INCLUDED = {"human": "human labels only", "human+auto": "human labels, else auto-accepted labels",
            "human+auto+proposals": "human labels, else auto-accepted labels, else the model's proposal (UNVERIFIED: "
                                    "`label_source` says `proposal (unverified)` in csv/jsonl)"}


def summary(writer: Writer, run: ExportRun, plan: SplitPlan, out: Path, seed: int,
            fractions: Sequence[float], seconds: float) -> dict[str, Any]:
    """The export's facts, in the order metadata.json lists them."""
    extra = writer.summary(run)
    return {
        "format": writer.name,
        "out": str(out),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "database": mask_url(run.store.url),
        "filters": {**run.selection.as_dict(), "all_rows": bool(run.options.all_rows)},
        "size": writer.size(run.options),
        "seed": seed,
        "split_fractions": list(fractions),
        "records": plan.records,
        "written": run.written,
        "selected_faces": sum(sum(c.values()) for c in run.counts.values()),
        "class_counts": {s: dict(sorted(run.counts[s].items())) for s in SPLITS},
        "excluded": dict(sorted(plan.excluded.items())),
        "skipped": dict(sorted(run.skipped.items())),
        "missing_classes": extra["missing_classes"],
        "class_folders": extra["class_folders"],
        "class_index": extra["class_index"],
        "label_accuracy": run.accuracy.result(),
        "label_quality": quality_summary(run.assessment),
        "model_sources": dict(plan.models.most_common()),
        "model_versions": model_version_rows(run.store),
        "files": run.files,
        "seconds": round(seconds, 2),
    }


def quality_summary(assessment) -> dict[str, Any]:
    """Label issues, agreement and consensus of the whole project (``labeler.quality.summary``)."""
    if assessment is None:
        from labeler.quality import INSTALL

        return {"computed": False, "why": f"the quality extra is not installed ({INSTALL})"}
    from labeler.quality.assessment import summary as qsummary

    return {"computed": True, **qsummary(assessment)}


def write(summ: dict[str, Any], note: str, metadata_path: Path, readme_path: Path) -> None:
    metadata_path.write_text(json.dumps(summ, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    readme_path.write_text(readme(summ, note, metadata_path.name), encoding="utf-8")


def readme(summ: dict[str, Any], note: str, metadata_name: str = "metadata.json") -> str:
    """The README of an export: what the files are, how they were selected, class counts, models."""
    f = summ["filters"]
    lines = [
        f"# labeler export ({summ['format']})",
        "",
        f"Exported {summ['exported_at']} from `{summ['database']}`.",
        "",
        note,
        "",
        "## Selection",
        "",
        f"- labels: {INCLUDED[f['include']]} (include={f['include']}); `unusable` is never a class",
        f"- minimum annotator agreement (human labels): {f['min_agreement']}",
        f"- classes: {', '.join(f['classes']) if f['classes'] is not None else 'all'}",
        f"- splits (train/val/test): {summ['split_fractions']}, seed {summ['seed']}; stratified by class and grouped "
        "by source image content (sha256): faces of one photo and copies of it are in one split only",
        f"- records read: {summ['records']}, written: {summ['written']}, faces selected: {summ['selected_faces']}",
        f"- left out: {json.dumps(summ['excluded'])}; skipped: {json.dumps(summ['skipped'])}",
        *([f"- splits without some class: {json.dumps(summ['missing_classes'])}"] if summ.get("missing_classes") else []),
        "",
        "## Class counts",
        "",
        "| class | " + " | ".join(SPLITS) + " |",
        "|---|" + "---|" * len(SPLITS),
    ]
    for c in sorted({c for s in SPLITS for c in summ["class_counts"][s]}):
        lines.append(f"| {c} | " + " | ".join(str(summ["class_counts"][s].get(c, 0)) for s in SPLITS) + " |")
    lines += ["", *accuracy_lines(summ.get("label_accuracy")), "", *quality_lines(summ.get("label_quality")),
              "", "## Models", ""]
    for src, n in summ["model_sources"].items():
        lines.append(f"- `{src}`: newest proposal of {n} faces")
    for m in summ["model_versions"]:
        lines.append(f"- trained: {m['name']}@{m['version']} ({m['path']})")
    if not summ["model_sources"] and not summ["model_versions"]:
        lines.append("- none")
    lines += ["", f"Everything above is also in `{metadata_name}`.", ""]
    return "\n".join(lines)


def quality_lines(q) -> list[str]:
    """The README's label-issue and agreement section (``label_quality`` of metadata.json)."""
    out = ["## Label issues and agreement", ""]
    if not q or not q.get("computed"):
        return out + [f"- not computed: {(q or {}).get('why', 'no assessment')}"]
    li = q["label_issues"]
    out.append(f"- {li['scored']} labels scored ({li['method']}; `label_issue_score` per face), {li['flagged_by_confident_learning']} "
               f"flagged by confident learning; {li['unscored']} without out-of-sample model probabilities")
    g = q["agreement"]
    if g:
        for key, name in (("alpha_nominal", "nominal"), ("alpha_weighted", "weighted by label distance")):
            a = g[key]
            out.append(f"- Krippendorff's alpha ({name}): {a['alpha']} (95% interval {a['lower']} to {a['upper']}), "
                       f"{a['faces']} faces rated by two or more of {g['annotators']} annotators")
    else:
        out.append("- agreement: no face was rated by two annotators")
    c = q["consensus"]
    out.append(f"- consensus ({c['method'] or 'none'}): {c['faces']} faces, {c['differs_from_majority']} differ from their majority label")
    out.append("- per face: the `label_issue_*`, `consensus_*` and `vote_distribution` columns (csv, jsonl, hf "
               "metadata.csv), else `label_quality.csv` beside the export")
    return out


def accuracy_lines(acc) -> list[str]:
    """The README's statement of the estimated label accuracy (``label_accuracy`` of metadata.json)."""
    out = ["## Estimated label accuracy", ""]
    if not acc or not acc["faces"]:
        return out + ["- no labeled faces selected"]
    props = f", {acc['unverified_proposals']} unverified proposals" if acc.get("unverified_proposals") else ""
    out.append(f"- {100 * acc['precision']:.1f}% of the {acc['faces']} labels are estimated right "
               f"(95% interval {100 * acc['lower']:.1f}% to {100 * acc['upper']:.1f}%): "
               f"{acc['human_labels']} human labels, {acc['auto_accepted']} auto-accepted{props}")
    out.append(f"- how: {acc['how']}")
    if acc["buckets"]:
        out += ["", "| auto-accepted by | faces | precision | 95% interval |", "|---|---|---|---|"]
        for b, v in acc["buckets"].items():
            out.append(f"| {b} | {v['faces']} | {v['precision']:.3f} | {v['lower']:.3f} to {v['upper']:.3f} |")
    return out


def export_lines(summ: dict[str, Any]) -> list[str]:
    """What `labeler export` prints after the export: class counts, the estimated accuracy, and why a
    data set is empty (with the option that writes the proposals)."""
    out = []
    counts = summ.get("class_counts", {})
    if any(counts.get(s) for s in SPLITS):
        out.append("class counts: " + json.dumps(counts, sort_keys=True))
    acc = summ.get("label_accuracy") or {}
    if acc.get("faces"):
        out.append(f"estimated label accuracy: {100 * acc['precision']:.1f}% (95% interval {100 * acc['lower']:.1f}% "
                   f"to {100 * acc['upper']:.1f}%): {acc['human_labels']} human, {acc['auto_accepted']} auto-accepted"
                   + (f", {acc['unverified_proposals']} unverified proposals" if acc.get("unverified_proposals") else ""))
    elif summ.get("filters", {}).get("include") != "human+auto+proposals":
        left = summ.get("excluded", {}).get("unlabeled", 0)
        out.append(f"the data set is empty: no face has a human or auto-accepted label yet ({left} faces wait for "
                   f"review or for the audits that start auto-accept). Next: `labeler ui` to audit and review, or "
                   f"`labeler export ... --include-proposals` to write the model's proposals now, marked unverified.")
    return out
