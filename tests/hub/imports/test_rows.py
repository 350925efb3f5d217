"""Row checks: every problem of a row is named with its column; good rows become typed records."""

from __future__ import annotations

from hub.imports.rows import DeviceRec, RosterRow, parse_row

TYPES = frozenset({"wristband", "door"})
GOOD = {"resident_id": "R1", "name": "张秀英", "household_id": "H1", "community": "sz/futian/lianhua"}


def test_a_good_row_with_flags_contacts_and_a_device() -> None:
    row = parse_row((7, {**GOOD, "birth_year": "1941", "risk_flags": "living_alone；dementia, heart_condition",
                         "lat": "22.5", "lon": "114.1", "contact2_name": "邻居", "contact2_phone": "+86 138-0000",
                         "device_id": "WB1", "device_type": "wristband", "device_room": "bed"}), TYPES)
    assert isinstance(row, RosterRow)
    assert row.row == 7 and row.birth_year == 1941 and row.lat == 22.5
    assert row.risk_flags == ["living_alone", "dementia", "heart_condition"]
    assert [(c.name, c.phone) for c in row.contacts] == [("邻居", "+86 138-0000")]
    assert row.device == DeviceRec("WB1", "wristband", "bed")


def test_every_problem_of_a_row_is_reported() -> None:
    errors = parse_row((3, {"resident_id": "R 1", "name": "", "household_id": "H1", "community": "SZ/Futian",
                            "birth_year": "1800", "phone": "abc", "lat": "22.5", "risk_flags": "Living-Alone",
                            "contact1_phone": "13800000000", "device_id": "D1", "device_type": "toaster",
                            "medical_notes": "x\x00y"}), TYPES)
    assert isinstance(errors, list)
    found = {(e.row, e.column) for e in errors}
    assert found == {(3, "resident_id"), (3, "name"), (3, "community"), (3, "birth_year"), (3, "phone"),
                     (3, "lon"), (3, "risk_flags"), (3, "contact1_name"), (3, "device_type"),
                     (3, "medical_notes")}
    # Reasons never repeat the cell's value (it may be personal data), except a refused flag or type name.
    assert all("abc" not in e.reason for e in errors)


def test_a_device_needs_both_id_and_type() -> None:
    no_type = parse_row((2, {**GOOD, "device_id": "D1"}), TYPES)
    no_id = parse_row((2, {**GOOD, "device_type": "door"}), TYPES)
    assert [(e.column, e.reason) for e in no_type] == [("device_type", "required when a device id is given")]
    assert [(e.column, e.reason) for e in no_id] == [("device_id", "required when a device type is given")]
