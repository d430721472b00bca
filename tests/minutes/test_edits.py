"""The minutes socket's client edits: one parser, typed results, the first fault refused by field."""

from __future__ import annotations

import pytest

from meetings.errors import InvalidInput
from meetings.live import minutes as protocol
from meetings.minutes.service import EntryInput


def _field(data: dict[str, object], op: str | None = None) -> str:
    with pytest.raises(InvalidInput) as caught:
        protocol.parse_edit(data, op=op)
    return caught.value.errors[0].field


def test_each_op_parses_to_its_class() -> None:
    assert protocol.parse_edit({"op": "add", "ref": 1, "text": "x", "key": "k"}) == protocol.AddEntry(
        1, EntryInput(kind="", text="x"), "k"
    )
    assert protocol.parse_edit({"op": "save", "ref": "a", "id": 3, "version": 2, "kind": "issue"}) == (
        protocol.SaveEntry("a", 3, 2, EntryInput(kind="issue"))
    )
    assert protocol.parse_edit({"op": "status", "id": 3, "version": 2, "status": "closed"}) == (
        protocol.SetStatus(None, 3, 2, "closed")
    )
    assert protocol.parse_edit({"op": "move", "id": 3, "version": 2, "position": 0}) == (
        protocol.MoveEntry(None, 3, 2, 0)
    )
    assert protocol.parse_edit({"op": "delete", "id": 3, "version": 2}) == protocol.DeleteEntry(None, 3, 2)
    header = protocol.parse_edit({"op": "header", "header_version": 4, "chair": "A", "other": 1})
    assert header == protocol.EditHeader(None, 4, {"chair": "A"})
    attendance = protocol.parse_edit({"op": "attendance", "header_version": 4})
    assert attendance == protocol.RefreshAttendance(None, 4)
    correct = {"op": "correct", "header_version": 4, "person_id": 7, "state": "late", "reason": "r"}
    assert protocol.parse_edit(correct) == protocol.CorrectAttendance(None, 4, 7, "late", "r")


def test_the_route_sets_the_op_and_there_is_no_ref() -> None:
    edit = protocol.parse_edit({"op": "delete", "ref": [1], "text": "x"}, op="add")
    assert edit == protocol.AddEntry(None, EntryInput(kind="", text="x"), None)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"op": "drop"}, "op"),
        ({"op": 1}, "op"),
        ({}, "op"),
        ({"op": "add", "ref": True}, "ref"),
        ({"op": "add", "ref": "x" * 101}, "ref"),
        ({"op": "add", "key": 5}, "key"),
        ({"op": "add", "text": 5}, "text"),
        ({"op": "add", "text": "x" * 100_001}, "text"),
        ({"op": "add", "link_id": "1"}, "link_id"),
        ({"op": "save", "id": True, "version": 1}, "id"),
        ({"op": "save", "id": 1, "version": 0}, "version"),
        ({"op": "status", "id": 1, "version": 1, "status": 2}, "status"),
        ({"op": "move", "id": 1, "version": 1, "position": 1.5}, "position"),
        ({"op": "move", "id": 1, "position": 1}, "version"),
        ({"op": "header", "header_version": "1"}, "header_version"),
        ({"op": "correct", "header_version": 1, "person_id": None}, "person"),
        ({"op": "correct", "header_version": 1, "person_id": 1, "reason": []}, "reason"),
        ({"op": "attendance"}, "header_version"),
    ],
)
def test_a_fault_is_refused_on_its_field(data: dict[str, object], field: str) -> None:
    assert _field(data) == field
