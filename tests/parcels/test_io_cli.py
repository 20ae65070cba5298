"""GIS files in and out, and ``dv parcels`` as a shell user meets it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import Polygon, mapping
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from digital_village.auth.actor import Actor
from digital_village.cli.main import app
from digital_village.ledger.log import Ledger
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
    session: Session, ledger: Ledger, world: World, backend: str
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
        session=session,
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
    tmp_path: Path, session: Session, ledger: Ledger, world: World
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
        session=session,
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
        session=session,
        ledger=ledger,
        source=parcel_io.read_file(archive),
        options=parcel_io.ImportOptions(fbfbm=GROUP),
        actor=Actor.operator(),
    )
    assert again.created == [] and again.already_imported is not None
    gpkg = tmp_path / "more.gpkg"
    frame.set_geometry([to_gk(field(2, 0), 4544), to_gk(field(3, 0), 4544)]).to_file(gpkg)
    more = parcel_io.import_features(
        session=session,
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
    session: Session, ledger: Ledger, world: World
) -> None:
    true_field = field(0, 0)
    shifted = shapely.transform(
        true_field,
        lambda xy: shapely.get_coordinates(shapely.points([wgs84_to_gcj02(x, y) for x, y in xy])),
    )
    report = parcel_io.import_features(
        session=session,
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
    document = parcel_io.export_geojson(session=session, region=VILLAGE)
    text = parcel_io.dumps(document)
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
