"""The ids a side-effecting call's response handed back, for undoing it."""

from __future__ import annotations

import orjson

from gateway.rollback import MAX_IDS, result_ids


def test_ids_are_found_at_the_top_and_one_level_down() -> None:
    body = orjson.dumps({"id": "re_1", "object": "refund", "charge": {"id": "ch_1",
                         "deep": {"id": "too deep"}}, "messageId": "m_1", "batch_id": 7,
                         "valid": True, "hidden_id": None})
    assert result_ids(body) == {"id": "re_1", "messageId": "m_1", "batch_id": "7",
                                "charge.id": "ch_1"}


def test_bodies_that_are_not_json_objects_have_no_ids() -> None:
    assert result_ids(b"<html>") == {}
    assert result_ids(b'[{"id": 1}]') == {}


def test_the_number_of_ids_is_bounded() -> None:
    body = orjson.dumps({f"k{i}_id": i for i in range(100)})
    assert len(result_ids(body)) == MAX_IDS
