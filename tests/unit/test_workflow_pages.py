"""The request page as rendered from a request view: failing cells marked with their rule,
buttons exactly as the guards decided, and hostile text (file names, descriptions, cell values)
escaped, never interpreted."""

from __future__ import annotations

from pathlib import Path

from tornado import template

from egress.web.pages import cell_marks
from egress.workflow import Actor
from hub.ui.frame import make_frame

TEMPLATES = Path(__file__).resolve().parents[2] / "egress" / "web" / "templates"
EVIL = '<script>alert("x")</script>'


def view(can: dict) -> dict:
    check = {"status": "fail", "verified": True, "table": [], "suggestions": [],
             "provenance": {"evidence_reason": ""},
             "cells": [{"row": 1, "column": "n", "labels": ["8507", EVIL], "value": 3, "status": "fail",
                        "verified": True, "findings": [{"rule": "threshold", "status": "fail",
                                                        "message": "3 persons < 10", "action": "suppress"}]}]}
    current = {"version": 2, "kind": "frequency", "description": EVIL, "check_status": "fail", "verified": True,
               "submitted_at": "t", "reviews_in": 0, "reviews": [],
               "files": [{"name": "t.parquet", "sha256": "a" * 64, "size_bytes": 10, "file_type": "parquet",
                          "provenance_sql": "SELECT 1", "check": check,
                          "preview": {"columns": ["sex", "label", "n"], "total_rows": 2,
                                      "rows": [[8507, "a", 20], [8507, EVIL, 3]]}}]}
    return {"id": "r-0123456789abcdef", "permit_id": "P-1", "permit_title": EVIL, "author": "alice",
            "state": "checked", "owner": "checker", "reviewers_required": 2, "versions": [current],
            "can": {"review": False, "approve": False, "release": False, "resubmit": False, "withdraw": False,
                    "download": False, **can}}


def render(req: dict) -> str:
    loader = template.Loader(str(TEMPLATES), autoescape="xhtml_escape")
    modules = type("Modules", (), {"xsrf_form_html": staticmethod(lambda: '<input type="hidden" name="_xsrf">')})
    frame = make_frame("carol", {"custom:spe:review"}, "en", "/", "/services/egress/requests/" + req["id"])
    return loader.load("request.html").generate(
        frame=frame, _=frame.t, frame_css="/hub/static/ui/spe.css",
        prefix="/services/egress/", actor=Actor("carol"), req=req, current=req["versions"][-1], earlier=[],
        cell_marks=cell_marks, message="", url_escape=lambda s, plus=False: s, _tt_modules=modules).decode()


def test_failing_cell_is_marked_with_its_rule_and_hostile_text_is_escaped():
    html = render(view({"review": True}))
    assert EVIL not in html and "&lt;script&gt;" in html
    assert html.count('class="cell fail"') == 1 and 'data-rules="threshold"' in html
    assert 'id="return"' in html and 'id="reject"' in html and 'id="approve"' not in html  # failing: no approve


def test_buttons_follow_the_guards():
    assert 'id="review-form"' not in render(view({}))
    html = render(view({"review": True, "approve": True}))
    assert 'id="approve"' in html
    assert 'id="release"' in render(view({"release": True}))
    assert 'id="withdraw"' in render(view({"withdraw": True}))
