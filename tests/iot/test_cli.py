"""`dv devices`, `dv integrations` and `dv iot` as an operator meets them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.cli.main import app
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.errors import Unauthorized
from digital_village.iot import devices, ingest, readings, seal, shapes
from digital_village.ledger import keys
from digital_village.regions import service as regions
from tests.conftest import World
from tests.factories import GROUP, VILLAGE, make_uscc
from tests.iot.conftest import register_fields

runner = CliRunner()


def dv(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _land(settings: Settings) -> list[str]:
    """A cooperative and three parcels in the freshly initialised database."""
    from digital_village.ledger.log import Ledger

    database = Database.from_url(settings.effective_database_url)
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    operator = Actor.operator()
    try:
        with database.transaction() as session:
            regions.add_region(session=session, code=VILLAGE, name="民安村", actor=operator)
            regions.add_region(session=session, code=GROUP, name="一组", actor=operator)
            coop = regions.register_cooperative(
                session=session,
                uscc=make_uscc(3),
                name="民安油菜专业合作社",
                region_code=VILLAGE,
                actor=operator,
            )
            household = regions.register_household(
                session=session,
                region_code=GROUP,
                name="王建国",
                phone=None,
                cooperative_id=coop.id,
                actor=operator,
            )
            world = World(coop.id, coop.id, household.id, household.id, 0, 0, {})
            return register_fields(session, ledger, world)
    finally:
        database.dispose()


def test_the_operator_registers_devices_and_integrations_and_seals_days(cli_env: Path) -> None:
    code, output = dv("init")
    assert code == 0, output
    settings = Settings()
    dkbms = _land(settings)

    code, output = dv(
        "devices",
        "add",
        "--parcel",
        dkbms[0],
        "--model",
        "DL-5TM",
        "--dev-eui",
        "70B3D57BA0000001",
        "--installed-at",
        "2026-01-01T08:00:00+08:00",
        "--json",
    )
    assert code == 0, output
    made = json.loads(output)
    assert made["token"].startswith("dv_") and made["parcel"] == dkbms[0]
    device_id = made["device_id"]
    code, output = dv("devices", "add", "--parcel", dkbms[1], "--model", "soil-thing")
    assert code == 1 and "known models: DL-5TM" in output
    code, output = dv(
        "devices",
        "add",
        "--parcel",
        dkbms[1],
        "--model",
        "generic",
        "--dev-eui",
        "70B3D57BA0000001",
    )
    assert code == 1 and "already registered" in output
    listed = json.loads(dv("devices", "list", "--json")[1])
    assert [(row["id"], row["parcel"]) for row in listed] == [(device_id, dkbms[0])]

    code, output = dv("integrations", "add", "chirpstack", "--json")
    assert code == 0, output
    integration = json.loads(output)
    assert integration["header"] == "X-DV-Integration-Secret"
    assert integration["secret"].startswith("dvi_")
    assert integration["secret"] not in dv("integrations", "list", "--json")[1]
    code, output = dv("iot", "policy", "soil_temperature", "reject")
    assert code == 0 and "now rejected" in output, output
    code, output = dv("iot", "policy", "soil_wetness", "flag")
    assert code == 1 and "known metrics" in output
    assert dv("iot", "policy", "soil_temperature", "default")[0] == 0
    code, output = dv("integrations", "add", "lorawan")
    assert code == 1 and "unknown integration 'lorawan'" in output

    code, output = dv("devices", "token", str(device_id), "--json")
    assert code == 0, output
    rotated = json.loads(output)["token"]
    database = Database.from_url(settings.effective_database_url)
    try:
        with database.transaction() as session:
            try:
                auth.authenticate(session=session, token=made["token"])
                raise AssertionError("the old token still works")
            except Unauthorized:
                pass
            assert auth.authenticate(session=session, token=rotated).device_id == device_id

            # Two days ago: readings to seal.
            day = seal.today() - dt.timedelta(days=2)
            start = readings.day_bounds_ms(day)[0]
            device = devices.get_device(session=session, device_id=device_id)
            checked = shapes.check_json(
                {
                    "readings": [
                        {
                            "metric": "soil_temperature",
                            "time": start + h * 3_600_000,
                            "value": 15.0 + h,
                        }
                        for h in range(24)
                    ]
                },
                now_ms=ingest.now_ms(),
                device_id=device_id,
            )
            assert (
                ingest.ingest_checked(session=session, device=device, checked=checked).accepted
                == 24
            )

        code, output = dv("iot", "seal", "--json")
        assert code == 0, output
        (sealed,) = json.loads(output)
        assert (sealed["parcel"], sealed["day"], sealed["count"]) == (dkbms[0], day.isoformat(), 24)
        assert "nothing to seal" in dv("iot", "seal")[1]
        code, output = dv("iot", "seal", "--day", seal.today().isoformat())
        assert code == 1 and "not over yet" in output

        code, output = dv("iot", "verify-day", "--parcel", dkbms[0], "--day", day.isoformat())
        assert code == 0 and "OK" in output, output

        with database.transaction() as session:
            proof = seal.reading_proof(
                session=session,
                device_id=device_id,
                metric="soil_temperature",
                time_ms=start + 5 * 3_600_000,
            )
        proof_file = cli_env / "reading.json"
        proof_file.write_text(json.dumps(proof))
        vkey = keys.verifier_key(settings.effective_ledger_key_path)
        code, output = dv("iot", "verify-reading", str(proof_file), "--vkey", vkey)
        assert code == 0 and "verified" in output, output
        proof["reading"]["value"] = 99.0
        proof_file.write_text(json.dumps(proof))
        code, output = dv("iot", "verify-reading", str(proof_file), "--vkey", vkey)
        assert code == 1 and "FAILED" in output

        with database.transaction() as session:
            session.execute(
                text("UPDATE reading SET value = value + 1 WHERE device_id = :d"), {"d": device_id}
            )
        code, output = dv("iot", "verify-day", "--parcel", dkbms[0], "--day", day.isoformat())
        assert code == 1 and "MISMATCH" in output
    finally:
        database.dispose()

    assert dv("devices", "retire", str(device_id))[0] == 0
    code, output = dv("devices", "move", str(device_id), "--parcel", dkbms[1])
    assert code == 1 and "retired" in output
