"""Maps: what is drawn, the legend's sums, and a PNG that never prints empty glyph boxes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy.orm import Session

from digital_village.errors import Invalid, NotFound
from digital_village.parcels import render
from tests.factories import GROUP


def test_village_map_by_crop_has_every_parcel_legend_scale_and_north(
    session: Session, grid: list[str]
) -> None:
    drawing = render.map_data(
        session=session, code=GROUP[:12], color_by="crop", on=dt.date(2026, 7, 1)
    )
    assert [p.dkbm for p in drawing.parcels] == grid
    assert [(i.name, i.count) for i in drawing.legend] == [("水稻", 4)]
    assert drawing.legend[0].area_mu == pytest.approx(15.0, abs=1e-3)
    svg = render.to_svg(drawing).decode()
    assert svg.count("<path") == 4 and svg.count(render.CROP_COLOURS["水稻"]) == 5
    assert "民安村" in drawing.title and "作物分布图" in drawing.title
    assert re.search(r">\d+ m</text>", svg), "scale bar label"
    assert ">N</text>" in svg
    labels = re.findall(r'font-size="[\d.]+">(\d{5})</text>', svg)
    assert sorted(labels) == ["00001", "00002", "00003", "00004"]


def test_land_use_colours_and_errors(session: Session, grid: list[str]) -> None:
    drawing = render.map_data(session=session, code=GROUP, color_by="land_use")
    assert drawing.legend[0].name == "0101 水田"
    with pytest.raises(Invalid, match="colour by"):
        render.map_data(session=session, code=GROUP, color_by="owner")
    with pytest.raises(NotFound):
        render.map_data(session=session, code="510603101202")
    with pytest.raises(Invalid, match="12-digit village"):
        render.map_data(session=session, code="5106")


def test_png_falls_back_to_english_without_a_cjk_font(
    session: Session, grid: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    drawing = render.map_data(session=session, code=GROUP[:12], on=dt.date(2027, 1, 1))
    assert drawing.legend[0].name_en == "rapeseed"
    monkeypatch.setattr(render, "cjk_font", lambda: None)
    png = render.to_png(drawing)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (render.WIDTH_PX, render.HEIGHT_PX)
