"""A parcel the county resurveyed under the same DKBM: the consumer page of a lot harvested
on it and the parcel's own page show the new shape and area, claimed against the resurvey's
entry, even when the page was built (and kept) before the resurvey."""

from __future__ import annotations

import datetime as dt

import shapely
from fastapi.testclient import TestClient
from shapely.affinity import scale
from sqlalchemy import Connection, select

from digital_village.db import Database
from digital_village.ledger.log import Ledger
from digital_village.parcels import batch
from digital_village.parcels.geometry import ParcelShape
from digital_village.parcels.models import Parcel
from digital_village.registry import updates
from tests.web.conftest import YEAR, Pages, html_of
from tests.web.facts_check import check_page, failed


def test_pages_follow_the_newest_shape_entry(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    settings = pages_db.settings
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    dkbm = pages_db.season.parcels[0]
    before = html_of(pages_client, pages_db.bottle)  # a view built before the resurvey
    database = Database(pages_connection)
    with database.transaction() as session:
        parcel = session.scalars(select(Parcel).where(Parcel.dkbm == dkbm)).one()
        old_mu = parcel.area_mu
        wider = scale(shapely.from_wkb(parcel.geometry_wkb), xfact=1.1, yfact=1.0)
        (shape,) = batch.prepare_many([wider])
        assert isinstance(shape, ParcelShape)
        holder = pages_db.world.household_a
        updates.apply_updates(
            session,
            ledger,
            [updates.ParcelUpdate(dkbm, None, holder, shape)],
            {},
            dt.date(YEAR + 1, 3, 1),
        )
        seq, new_mu = parcel.last_seq, parcel.area_mu
    assert new_mu > old_mu * 1.09
    assert f"{old_mu:.2f}" in before
    for path in (pages_db.bottle, f"/p/{dkbm}"):
        html = html_of(pages_client, path)
        facts = check_page(pages_client, html, ledger.vkey)
        assert failed(facts) == [], path
        shown = [f for f in facts if f.claims.get("/data/area_mu") == round(new_mu, 4)]
        assert [f.index for f in shown] == [seq], path
        code = [f for f in facts if f.claims.get("/data/dkbm") == dkbm]
        assert [f.index for f in code] == [seq] and "/data/geometry_sha256" in code[0].claims
