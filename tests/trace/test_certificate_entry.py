"""A 承诺达标合格证's issue entry is public: it binds the issuer's contact without holding it."""

from __future__ import annotations

import datetime as dt

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digital_village.db import Database
from digital_village.ledger.log import Ledger
from digital_village.trace import recorded
from digital_village.trace.models import Certificate, Lot
from tests.conftest import World
from tests.trace.conftest import OIL, Chain, capture_doc, season

PHONE = "0838-6200001"


def _issue(client: TestClient, world: World, chain: Chain) -> dict[str, object]:
    assert capture_doc(client, world, "manager", season(chain)).status_code == 202
    issued = client.post(
        f"/api/v1/lots/{OIL}/OIL-2025-007/certificates",
        json={"contact": PHONE, "basis": ["self_testing"], "issued_on": "2025-06-05"},
        headers=world.auth("manager"),
    )
    assert issued.status_code == 201, issued.text
    body: dict[str, object] = issued.json()
    return body


def _set_contact(db: Database, number: object, contact: str) -> None:
    with db.transaction() as session:
        session.execute(
            update(Certificate).where(Certificate.number == number).values(contact=contact)
        )


def test_the_issue_entry_holds_no_phone_number_and_still_binds_the_contact(
    client: TestClient, world: World, chain: Chain, db: Database
) -> None:
    certificate = _issue(client, world, chain)
    served = client.get(f"/api/v1/ledger/entries/{certificate['ledger_seq']}")
    assert served.status_code == 200
    for spelling in (PHONE, PHONE.replace("-", ""), "6200001"):
        assert spelling not in served.text
    data = orjson.loads(served.content)["data"]
    assert "contact" not in data and len(data["contactCommitment"]) == 64
    with db.transaction(write=False) as session:
        salt = session.scalar(
            select(Certificate.contact_salt).where(Certificate.number == certificate["number"])
        )
    assert salt is not None and data["contactCommitment"] == recorded.contact_commitment(
        salt, PHONE
    )
    verify = f"/api/v1/certificates/{certificate['number']}/verify"
    assert client.get(verify).json() == {
        "number": certificate["number"],
        "ok": True,
        "problems": [],
    }
    _set_contact(db, certificate["number"], "0838-6999999")  # the row altered after issue
    found = client.get(verify).json()
    assert found["ok"] is False
    assert "contactCommitment is" in found["problems"][0]["what"]


def test_a_certificate_issued_when_entries_recorded_the_contact_still_verifies(
    client: TestClient, world: World, chain: Chain, db: Database, ledger: Ledger, session: Session
) -> None:
    assert capture_doc(client, world, "manager", season(chain)).status_code == 202
    lot = session.scalars(select(Lot).where(Lot.gtin == OIL, Lot.lot == "OIL-2025-007")).one()
    data = {
        "number": "6200000-20250605-0009",
        "gtin": OIL,
        "lot": "OIL-2025-007",
        "product": "天府菜油",
        "quantity": 10.0,
        "unit": "LTR",
        "origin": "旌阳区孝泉镇民安村",
        "issuedOn": "2025-06-05",
        "issuer": "民安油菜专业合作社",
        "contact": PHONE,
        "basis": ["self_testing"],
        "commitments": ["residues_within_limits"],
    }
    entry = ledger.append(session, kind=recorded.CERTIFICATE_KIND, data=data)
    session.add(
        Certificate(
            number=data["number"],
            lot_id=lot.id,
            product_name="天府菜油",
            quantity=10.0,
            unit="LTR",
            origin="旌阳区孝泉镇民安村",
            issued_on=dt.date(2025, 6, 5),
            issuer="民安油菜专业合作社",
            contact=PHONE,
            contact_salt=None,
            basis='["self_testing"]',
            commitments='["residues_within_limits"]',
            cooperative_id=world.coop_a,
            ledger_seq=entry.seq,
        )
    )
    session.commit()
    verify = f"/api/v1/certificates/{data['number']}/verify"
    assert client.get(verify).json()["ok"] is True
    _set_contact(db, data["number"], "0838-6999999")
    found = client.get(verify).json()
    assert found["ok"] is False
    assert "contact is '0838-6999999' in its row" in found["problems"][0]["what"]
