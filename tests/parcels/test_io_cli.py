"""GIS files in and out, and ``dv parcels`` as a shell user meets it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import Polygon, mapping
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from digital_village.auth.actor import Actor
from digital_village.cli.main import app
from digital_village.db import Database
from digital_village.ledger.log import Ledger
from digital_village.parcels import geojson
from digital_village.parcels import io as parcel_io
from digital_village.parcels import service as parcels
from digital_village.parcels.geometry import to_gk, wgs84_to_gcj02
from tests.conftest import World
from tests.factories import GROUP
from tests.parcels.conftest import ORIGIN_E, ORIGIN_N, field, gk_box

runner = CliRunner()
VILLAGE = GROUP[:12]


def dv(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _collection(*shapes: Polygon, **props: str) -> dict[str, object]:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"land_use": "0101", **props}, "geometry": mapping(s)}
            for s in shapes
        ],
    }


def test_thousands_of_features_every_bad_one_named(
    session: Session, db: Database, ledger: Ledger, world: World, backend: str
) -> None:
    # 2,500 features on SQLite and 900 on PostgreSQL keep the suite quick (every new ledger
    # chain costs a query); scripts/bench_parcels.py imports 10,000 and 100,000.
    side = 50 if backend == "sqlite" else 30
    good = [
        gk_box(x * 12, y * 12, x * 12 + 11, y * 12 + 11) for y in range(side) for x in range(side)
    ]
    document = _collection(*good)
    features = document["features"]
    assert isinstance(features, list)
    bad = {
        17: ({"type": "Polygon", "coordinates": []}, "empty"),
        404: (mapping(shapely.transform(good[404], lambda xy: xy[:, ::-1])), "swapped"),
        405: (mapping(shapely.affinity.translate(good[405], 40.0)), "outside China"),
        800: (
            {
                "type": "Polygon",
                "coordinates": [
                    [
                        [104.27, 31.26],
                        [104.271, 31.261],
                        [104.271, 31.26],
                        [104.27, 31.261],
                        [104.27, 31.26],
                    ]
                ],
            },
            "Self-intersection",
        ),
        801: (mapping(good[799]), "same shape as feature 799"),
        len(good) - 1: (
            {"type": "Point", "coordinates": [104.27, 31.26]},
            "Polygon or MultiPolygon",
        ),
    }
    for index, (geometry, _) in bad.items():
        features[index]["geometry"] = geometry
    report = parcel_io.import_features(
        database=db,
        ledger=ledger,
        source=parcel_io.read_geojson(document),
        options=parcel_io.ImportOptions(fbfbm=GROUP),
        actor=Actor.operator(),
    )
    assert len(report.created) == len(good) - len(bad)
    assert [r.feature for r in report.rejected] == sorted(bad)
    for rejected in report.rejected:
        assert bad[rejected.feature][1] in rejected.reason, rejected.reason
    assert report.created[-1].dkbm == f"{GROUP}{len(good) - len(bad):05d}"


def test_shapefile_zip_in_gauss_kruger_and_geopackage(
    tmp_path: Path, session: Session, db: Database, ledger: Ledger, world: World
) -> None:
    frame = gpd.GeoDataFrame(
        {"DLBM": ["0101", "0103"], "DKMC": ["大田", "坡地"]},
        geometry=[to_gk(field(0, 0), 4544), to_gk(field(1, 0), 4544)],
        crs="EPSG:4544",
    )
    shp = tmp_path / "fields.shp"
    frame.to_file(shp)
    archive = tmp_path / "fields.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for part in tmp_path.glob("fields.*"):
            if part != archive:
                bundle.write(part, part.name)
    read = parcel_io.read_file(archive)
    assert read.crs is not None and "4544" in read.crs
    report = parcel_io.import_features(
        database=db,
        ledger=ledger,
        source=read,
        options=parcel_io.ImportOptions(fbfbm=GROUP),
        actor=Actor.operator(),
    )
    assert [round(c.area_m2, 2) for c in report.created] == [2500.0, 2500.0]
    first = parcels.get_parcel(session=session, dkbm=report.created[0].dkbm)
    assert (first.land_use, first.name) == ("0101", "大田")
    # The same file again: recognised, nothing stored twice.
    again = parcel_io.import_features(
        database=db,
        ledger=ledger,
        source=parcel_io.read_file(archive),
        options=parcel_io.ImportOptions(fbfbm=GROUP),
        actor=Actor.operator(),
    )
    assert again.created == [] and again.already_imported is not None
    gpkg = tmp_path / "more.gpkg"
    frame.set_geometry([to_gk(field(2, 0), 4544), to_gk(field(3, 0), 4544)]).to_file(gpkg)
    more = parcel_io.import_features(
        database=db,
        ledger=ledger,
        source=parcel_io.read_file(gpkg),
        options=parcel_io.ImportOptions(fbfbm=GROUP),
        actor=Actor.operator(),
    )
    assert len(more.created) == 2 and not more.rejected
    (tmp_path / "lonely.shp").write_bytes(shp.read_bytes())
    with pytest.raises(parcels.Invalid, match=r"\.shx and \.dbf"):
        parcel_io.read_file(tmp_path / "lonely.shp")


def test_gcj02_input_lands_where_the_wgs84_field_is(
    session: Session, db: Database, ledger: Ledger, world: World
) -> None:
    true_field = field(0, 0)
    shifted = shapely.transform(
        true_field,
        lambda xy: shapely.get_coordinates(shapely.points([wgs84_to_gcj02(x, y) for x, y in xy])),
    )
    report = parcel_io.import_features(
        database=db,
        ledger=ledger,
        source=parcel_io.read_geojson(_collection(shifted)),
        options=parcel_io.ImportOptions(fbfbm=GROUP, source=parcels.parse_source_crs("gcj02")),
        actor=Actor.operator(),
    )
    stored = parcels.parcel_geometry(
        parcels.get_parcel(session=session, dkbm=report.created[0].dkbm)
    )
    # Within 1 cm (the snap grid) of the true field everywhere.
    assert shapely.hausdorff_distance(to_gk(stored, 4544), to_gk(true_field, 4544)) < 0.01


def test_export_round_trips_and_has_six_decimals(
    session: Session, ledger: Ledger, grid: list[str]
) -> None:
    document = geojson.export_geojson(session=session, region=VILLAGE)
    text = geojson.dumps(document)
    numbers = [n for n in text.replace("[", ",").replace("]", ",").split(",") if "." in n]
    assert numbers and all(len(n.split(".")[1]) <= 6 for n in numbers if n[0] in "0123456789")
    assert [f["properties"]["dkbm"] for f in document["features"]] == grid
    assert document["features"][0]["properties"]["area_mu"] == 3.75


def test_dv_parcels_import_locate_export_map(cli_env: Path, tmp_path: Path) -> None:
    assert dv("init")[0] == 0
    assert dv("regions", "add", VILLAGE, "民安村")[0] == 0
    assert dv("regions", "add", GROUP, "一组")[0] == 0
    path = tmp_path / "fields.geojson"
    document = _collection(field(0, 0), field(1, 0), gk_box(10, 10, 30, 30))
    path.write_text(json.dumps(document), encoding="utf-8")
    code, output = dv(
        "parcels", "import", str(path), "--fbfbm", GROUP, "--all-or-nothing", "--json"
    )
    assert code == 1
    refused = json.loads(output)
    assert refused["created"] == [] and refused["rejected"][0]["feature"] == 2
    code, output = dv("parcels", "import", str(path), "--fbfbm", GROUP, "--json")
    assert code == 1
    report = json.loads(output)
    assert [c["dkbm"] for c in report["created"]] == [f"{GROUP}00001", f"{GROUP}00002"]
    assert report["created"][0]["area_mu"] == 3.75
    assert "overlaps feature 0" in report["rejected"][0]["reason"]
    code, output = dv(
        "parcels", "locate", str(ORIGIN_E + 60), str(ORIGIN_N + 10), "--crs", "EPSG:4544", "--json"
    )
    assert code == 0 and json.loads(output)["dkbm"] == f"{GROUP}00002"
    code, output = dv("parcels", "locate", "104.0", "31.0")
    assert code == 1 and "no active parcel" in output
    code, output = dv("parcels", "locate", "31.26", "104.27")
    assert code != 0 and "swapped" in output
    out = tmp_path / "export.geojson"
    assert dv("parcels", "export", "--village", VILLAGE, "--out", str(out))[0] == 0
    assert len(json.loads(out.read_text())["features"]) == 2
    svg, png = tmp_path / "map.svg", tmp_path / "map.png"
    assert dv("parcels", "map", VILLAGE, "--out", str(svg))[0] == 0
    assert svg.read_text().startswith("<svg") and "民安村" in svg.read_text()
    assert dv("parcels", "map", GROUP, "--out", str(png))[0] == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    code, output = dv("parcels", "map", VILLAGE, "--out", str(tmp_path / "map.jpg"))
    assert code == 2 and ".svg or .png" in output


def test_reasons_name_features_of_the_input_not_codes(
    session: Session, db: Database, ledger: Ledger, world: World
) -> None:
    # Features 3 and 4 meet features 0 and 1, which an all-or-nothing import never stores.
    document = _collection(
        field(0, 0), field(1, 0), field(2, 0), field(0, 0), gk_box(60, 10, 80, 30)
    )

    def run(all_or_nothing: bool) -> parcels.RegisterReport:
        return parcel_io.import_features(
            database=db,
            ledger=ledger,
            source=parcel_io.read_geojson(document),
            options=parcel_io.ImportOptions(fbfbm=GROUP, all_or_nothing=all_or_nothing),
            actor=Actor.operator(),
        )

    for all_or_nothing in (True, False):
        with session.begin_nested() as attempt:
            report = run(all_or_nothing)
            reasons = {r.feature: r.reason for r in report.rejected}
            assert reasons == {
                3: "same shape as feature 0 of this input",
                4: "overlaps feature 1 (400.0 m²)",
            }
            assert report.stored is not all_or_nothing
            attempt.rollback()


def _gis_files(folder: Path) -> dict[str, Path]:
    """The files a county clerk gets: GeoPackage and Shapefile in GK metres, one mislabelled."""

    def frame(crs: str, *shapes: Polygon) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame(
            {"DLBM": ["0101"] * len(shapes), "DKMC": [f"田{i}" for i in range(len(shapes))]},
            geometry=[to_gk(s, 4544) for s in shapes],
            crs=crs,
        )

    files = {"gpkg": folder / "survey.gpkg", "shp": folder / "fields.shp"}
    frame("EPSG:4544", field(0, 0), field(1, 0)).to_file(files["gpkg"])
    frame("EPSG:4544", field(2, 0), field(3, 0)).to_file(files["shp"])
    files["zip"] = folder / "fields.zip"
    with zipfile.ZipFile(files["zip"], "w") as bundle:
        for part in folder.glob("fields.*"):
            if part != files["zip"]:
                bundle.write(part, part.name)
    # The right metres, but the .prj of the zone to the west (CM 102E): 286 km off.
    files["wrong_zone"] = folder / "wrong_zone.gpkg"
    frame("EPSG:4543", field(0, 2)).to_file(files["wrong_zone"])
    files["lonlat"] = folder / "lonlat.geojson"
    files["lonlat"].write_text(json.dumps(_collection(field(0, 3))), encoding="utf-8")
    return files


def test_dv_parcels_reads_a_clerks_files_and_explains_crs_mistakes(
    cli_env: Path, tmp_path: Path
) -> None:
    assert dv("init")[0] == 0
    assert dv("regions", "add", VILLAGE, "民安村")[0] == 0
    assert dv("regions", "add", GROUP, "一组")[0] == 0
    files = _gis_files(tmp_path)

    def import_json(*args: str) -> tuple[int, dict[str, Any]]:
        code, output = dv("parcels", "import", *args, "--fbfbm", GROUP, "--json")
        return code, json.loads(output)

    code, report = import_json(str(files["gpkg"]))
    assert code == 0 and [c["area_m2"] for c in report["created"]] == [2500.0, 2500.0]
    code, report = import_json(str(files["zip"]))
    assert code == 0 and [c["dkbm"] for c in report["created"]] == [
        f"{GROUP}00003",
        f"{GROUP}00004",
    ]
    # The .shp beside its .shx/.dbf/.prj: the same fields as the zip, so each is named.
    code, report = import_json(str(files["shp"]))
    assert code == 1 and report["created"] == []
    assert [r["reason"] for r in report["rejected"]] == [
        f"same shape as parcel {GROUP}00003, already registered (re-import?)",
        f"same shape as parcel {GROUP}00004, already registered (re-import?)",
    ]
    code, report = import_json(str(files["wrong_zone"]))
    assert code == 1
    (rejected,) = report["rejected"]
    assert "km from the other parcels of village 510603101201" in rejected["reason"]
    assert "EPSG:4543" in rejected["reason"]
    code, report = import_json(str(files["lonlat"]), "--crs", "EPSG:4544")
    assert code == 1 and "look like lon/lat" in report["rejected"][0]["reason"]
    # Mistakes that stop the whole import: exit 2, nothing stored, one clear line.
    code, output = dv("parcels", "import", str(files["gpkg"]), "--fbfbm", GROUP, "--crs", "gcj02")
    assert code == 2 and "is in EPSG:4544, projected metres; gcj02 is for lon/lat" in output
    code, output = dv("parcels", "import", str(files["gpkg"]), "--fbfbm", VILLAGE + "07")
    assert code == 2 and "nothing imported: unknown group code 07" in output
    code, output = dv("parcels", "import", str(files["gpkg"]), "--fbfbm", GROUP, "--crs", "EPSG:1")
    assert code == 2 and "unknown CRS 'EPSG:1'" in output
    code, output = dv("parcels", "locate", "0", "0", "--crs", "EPSG:4544")
    assert code == 2 and "EPSG:4544" in output
    # Every parcel stored so far is where the survey put it.
    out = tmp_path / "out.geojson"
    assert dv("parcels", "export", "--village", VILLAGE, "--out", str(out))[0] == 0
    exported = json.loads(out.read_text(encoding="utf-8"))["features"]
    assert [f["properties"]["name"] for f in exported] == ["田0", "田1", "田0", "田1"]
    assert {f["properties"]["village_code"] for f in exported} == {VILLAGE}


def test_dv_parcels_output_mistakes_are_reported_before_any_work(
    cli_env: Path, tmp_path: Path
) -> None:
    assert dv("init")[0] == 0
    assert dv("regions", "add", VILLAGE, "民安村")[0] == 0
    code, output = dv("parcels", "export", "--out", str(tmp_path / "parcels.txt"))
    assert code == 2 and "--out must end in .geojson or .json" in output
    code, output = dv("parcels", "export", "--out", str(tmp_path / "no" / "parcels.geojson"))
    assert code == 2 and "there is no folder" in output
    code, output = dv("parcels", "map", VILLAGE, "--out", str(tmp_path / "no" / "map.svg"))
    assert code == 2 and "there is no folder" in output
    # A mistyped village is not an empty one.
    code, output = dv("parcels", "export", "--village", VILLAGE[:-1] + "9", "--out", "x.geojson")
    assert code == 1 and "unknown village code 510603101209" in output
    code, output = dv("parcels", "map", VILLAGE[:-1] + "9", "--out", str(tmp_path / "m.svg"))
    assert code == 1 and "unknown village code 510603101209" in output
    code, output = dv("parcels", "map", VILLAGE, "--out", str(tmp_path / "m.svg"))
    assert code == 1 and f"no active parcels in {VILLAGE}" in output
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    code, output = dv("parcels", "import", str(empty), "--fbfbm", VILLAGE + "00")
    assert code == 2 and "holds no features" in output


def _coded(*pairs: tuple[Polygon, str | None]) -> dict[str, Any]:
    features = []
    for shape, dkbm in pairs:
        props = {"land_use": "0101", **({"DKBM": dkbm} if dkbm else {})}
        features.append({"type": "Feature", "properties": props, "geometry": mapping(shape)})
    return {"type": "FeatureCollection", "features": features}


def test_a_files_own_dkbm_is_kept_and_checked(
    session: Session, db: Database, ledger: Ledger, world: World
) -> None:
    other_group = GROUP[:12] + "99"
    document = _coded(
        (gk_box(0, 0, 20, 20), f"{GROUP}00120"),
        (gk_box(30, 0, 50, 20), None),  # no code of its own: the next after the kept ones
        (gk_box(60, 0, 80, 20), f"{GROUP}0012"),  # 18 digits
        (gk_box(90, 0, 110, 20), f"{other_group}00001"),  # another 发包方's code
        (gk_box(120, 0, 140, 20), f"{GROUP}00120"),  # the code of feature 0 again
        (gk_box(150, 0, 170, 20), f"{GROUP}00007"),
    )
    report = parcel_io.import_features(
        database=db,
        ledger=ledger,
        source=parcel_io.read_geojson(document),
        options=parcel_io.ImportOptions(fbfbm=GROUP),
        actor=Actor.operator(),
    )
    created = {c.feature: c.dkbm for c in report.created}
    assert created == {0: f"{GROUP}00120", 1: f"{GROUP}00121", 5: f"{GROUP}00007"}
    reasons = {r.feature: r.reason for r in report.rejected}
    assert "DKBM must be 19 digits" in reasons[2]
    assert reasons[3] == f"DKBM {other_group}00001 does not start with its FBFBM {GROUP}"
    assert reasons[4] == f"DKBM {GROUP}00120 is also the code of feature 0"
    again = parcel_io.import_features(
        database=db,
        ledger=ledger,
        source=parcel_io.read_geojson(_coded((gk_box(0, 40, 20, 60), f"{GROUP}00007"))),
        options=parcel_io.ImportOptions(fbfbm=GROUP),
        actor=Actor.operator(),
    )
    assert [r.reason for r in again.rejected] == [f"DKBM {GROUP}00007 is already registered"]
    assigned = parcel_io.import_features(
        database=db,
        ledger=ledger,
        source=parcel_io.read_geojson(_coded((gk_box(0, 40, 20, 60), f"{GROUP}00007"))),
        options=parcel_io.ImportOptions(fbfbm=GROUP, keep_codes=False),
        actor=Actor.operator(),
    )
    assert [c.dkbm for c in assigned.created] == [f"{GROUP}00122"]


def test_dv_parcels_import_codes_option(cli_env: Path, tmp_path: Path) -> None:
    assert dv("init")[0] == 0
    assert dv("regions", "add", VILLAGE, "民安村")[0] == 0
    assert dv("regions", "add", GROUP, "一组")[0] == 0
    path = tmp_path / "coded.geojson"
    path.write_text(json.dumps(_coded((field(0, 0), f"{GROUP}04321"))), encoding="utf-8")
    code, output = dv("parcels", "import", str(path), "--fbfbm", GROUP, "--codes", "kept")
    assert code == 2 and "keep or assign" in output
    code, output = dv("parcels", "import", str(path), "--fbfbm", GROUP, "--json")
    assert code == 0 and json.loads(output)["created"][0]["dkbm"] == f"{GROUP}04321"
    path.write_text(json.dumps(_coded((field(1, 0), f"{GROUP}04321"))), encoding="utf-8")
    code, output = dv(
        "parcels", "import", str(path), "--fbfbm", GROUP, "--codes", "assign", "--json"
    )
    assert code == 0 and json.loads(output)["created"][0]["dkbm"] == f"{GROUP}04322"
