"""The `labeler` command line end to end on sample_data/ (real images, real models)."""

import csv
import shutil

from labeler.cli import main

from .conftest import SAMPLE


def run(capsys, *argv) -> str:
    rc = main(list(argv))
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


def test_cli_main_job_and_csv_export(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default database is ./labeler.db
    src = tmp_path / "in"
    shutil.copytree(SAMPLE, src)
    out = run(capsys, "autolabel", str(src), "-q")
    assert "faces:" in out and "route review" in out
    assert (tmp_path / "labeler.db").exists()
    status = run(capsys, "status")
    assert "broken" in status and "ambiguous name" in status
    rep = run(capsys, "rules", "report")
    assert "happy<-smiling" in rep and "ambiguous: 2" in rep
    # the per-face CSV of issue 3
    run(capsys, "export", "--format", "csv", "--out", str(tmp_path / "faces.csv"))
    rows = list(csv.DictReader(open(tmp_path / "faces.csv", encoding="utf-8")))
    for col in ("image", "face", "x1", "y1", "x2", "y2", "det_score", "rule_label", "model_label", "model_prob", "route", "label", "label_source"):
        assert col in rows[0], col
    by_image = {}
    for r in rows:
        by_image.setdefault(r["image"], []).append(r)
    assert [r["face"] for r in by_image["happy_team_photo.jpg"]] == ["0", "1", "2"]
    assert by_image["coffee_cup.jpg"][0]["face"] == "" and by_image["coffee_cup.jpg"][0]["route"] == "no_face"
    assert by_image["empty.jpg"][0]["route"] == "broken"
    # a second run adds nothing
    again = run(capsys, "autolabel", str(src), "-q")
    assert "new images:        0" in again and "images detected:   0" in again


def test_cli_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "rules.txt"
    bad.write_text("happy: glad\nhapi: joy\n", encoding="utf-8")
    rc = main(["ingest", str(SAMPLE), "--rules", str(bad), "--db", str(tmp_path / "x.db"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "rules.txt, line 2: unknown class 'hapi'" in err


def test_rules_report_reapply_with_another_rules_file(tmp_path, capsys, sample_db):
    """`rules report --reapply --rules FILE` rewrites every image's rule fields from FILE."""
    from labeler.store import Store, iter_face_records

    before = run(capsys, "rules", "report", "--db", sample_db)
    assert "happy<-smiling" in before
    rules = tmp_path / "rules.txt"
    rules.write_text("surprise: smiling\nnegate: not\n", encoding="utf-8")
    after = run(capsys, "rules", "report", "--db", sample_db, "--reapply", "--rules", str(rules))
    assert "surprise<-smiling" in after and "happy<-smiling" not in after
    recs = {r.relpath: r for r in iter_face_records(Store(sample_db))}
    assert (recs["smiling_astronaut.png"].rule_state, recs["smiling_astronaut.png"].rule_label) == ("labeled", "surprise")
    assert recs["sad-woman-happy-face.jpg"].rule_state == "none"  # no word of the new file in the name
    assert recs["smiling_astronaut.png"].rule_words[0].word == "smiling"
