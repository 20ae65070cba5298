"""Resource maps of a village or township (资源图): SVG written directly, PNG through matplotlib.

Parcels are drawn in their Gauss-Krüger zone (metres, grid north up), coloured by this
season's crop or by GB/T 21010 land use, labelled with the short 5-digit parcel number where
it fits, with a legend (count and 亩 per class), a scale bar and a north arrow. The PNG uses
an installed CJK font (fonts-noto-cjk, fonts-wqy-zenhei) or the one the labels package
ships, and English names when neither is there, so it never prints empty boxes; the SVG
leaves fonts to the viewer.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.errors import Invalid, NotFound
from digital_village.parcels import geometry, landuse
from digital_village.parcels import service as parcels
from digital_village.regions.models import Region

CROP_COLOURS = {
    "水稻": "#7fc97f",
    "油菜": "#f6d743",
    "玉米": "#f0a04b",
    "小麦": "#d9b26f",
    "大豆": "#b5a36a",
    "蔬菜": "#a6d96a",
    "休耕": "#d9d9d9",
}
# After the colour conventions of the national land survey: cropland in yellows, gardens
# in pinks and oranges, forest and grass in greens, water in blue.
LAND_USE_COLOURS = {
    "0101": "#f5e96b",
    "0102": "#f8ef9a",
    "0103": "#fbf4c6",
    "0201": "#f2a5a0",
    "0202": "#e6b98a",
    "0203": "#d8a070",
    "0204": "#eac3b5",
    "0301": "#5aa469",
    "0302": "#7dbb6f",
    "0305": "#9acd8c",
    "0307": "#b9dcae",
    "0401": "#c9e6a0",
    "0403": "#d6ecb3",
    "0404": "#e2f1c8",
    "1104": "#8ec9e8",
    "1202": "#c7b8d8",
    "1203": "#c8c0b0",
}
_SPARE = ["#8dd3c7", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5"]
NONE_COLOUR = "#e0e0e0"
EDGE = "#4d4d4d"
WIDTH_PX, HEIGHT_PX = 1400, 1000
MAP_BOX = (40.0, 110.0, 1040.0, 930.0)  # x0, y0, x1, y1 of the map frame in pixels
LEGEND_AT = (MAP_BOX[2] + 30, MAP_BOX[1] + 90)
NORTH_AT = (MAP_BOX[2] + 60, MAP_BOX[1] + 12)
SCALE_AT = (MAP_BOX[2] + 30, MAP_BOX[3] - 12)
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "SimHei",
    "Microsoft YaHei",
    "AR PL UMing CN",
)


@dataclass(frozen=True)
class MapParcel:
    dkbm: str
    label: str
    category: str
    area_mu: float
    shape: Any  # in GK metres


@dataclass(frozen=True)
class LegendItem:
    category: str
    name: str
    name_en: str
    colour: str
    count: int
    area_mu: float


@dataclass(frozen=True)
class MapDrawing:
    """Everything a renderer needs: projected shapes, classes, titles; no database after this."""

    code: str
    title: str
    title_en: str
    subtitle: str
    color_by: str
    parcels: list[MapParcel]
    legend: list[LegendItem]
    bounds: tuple[float, float, float, float]
    epsg: int


def _region_names(session: Session, code: str) -> tuple[str, str]:
    codes = [code[:9], code[:12]] + ([code] if len(code) == 14 else [])
    names = dict(
        session.execute(select(Region.code, Region.name).where(Region.code.in_(codes))).all()
    )
    village = names.get(code[:12], "") if len(code) >= 12 else ""
    group = names.get(code, "") if len(code) == 14 and not code.endswith("00") else ""
    chinese = " ".join(n for n in (names.get(code[:9], ""), village, group) if n)
    level = {9: "township", 12: "village", 14: "group"}[len(code)]
    return chinese, f"{level} {code}"


def map_data(
    *, session: Session, code: str, color_by: str = "crop", on: dt.date | None = None
) -> MapDrawing:
    """Collect and project the active parcels of a township, village or FBFBM for drawing."""
    if color_by not in ("crop", "land_use"):
        raise Invalid(f"colour by 'crop' or 'land_use', not {color_by!r}")
    code = code.strip()
    rows = parcels.parcels_of_region(session=session, code=code)
    if not rows:
        raise NotFound(f"no active parcels in {code}")
    day = on or parcels.today()
    crops = parcels.crops_on(session=session, parcel_ids=[p.id for p in rows], on=day)
    epsg = geometry.gk_epsg(float(np.median([(p.min_lon + p.max_lon) / 2 for p in rows])))
    shapes = geometry.to_gk(
        np.asarray([parcels.parcel_geometry(p) for p in rows], dtype=object), epsg
    )
    items = []
    for parcel, shape in zip(rows, shapes, strict=True):
        category = crops.get(parcel.id, "") if color_by == "crop" else parcel.land_use
        items.append(MapParcel(parcel.dkbm, parcel.dkbm[-5:], category, parcel.area_mu, shape))
    legend = _legend(items, color_by)
    name, name_en = _region_names(session, code)
    kind = "作物分布图" if color_by == "crop" else "土地利用现状图"
    kind_en = "crops" if color_by == "crop" else "land use"
    season = landuse.season_of(day) if color_by == "crop" else day.isoformat()
    total = sum(p.area_mu for p in items)
    return MapDrawing(
        code=code,
        title=f"{name} {kind}".strip(),
        title_en=f"{name_en}: {kind_en}",
        subtitle=f"{code} · {len(items)} parcels · {total:,.1f} mu · {season} · EPSG:{epsg}",
        color_by=color_by,
        parcels=items,
        legend=legend,
        bounds=tuple(shapely.total_bounds(shapes)),
        epsg=epsg,
    )


def _legend(items: list[MapParcel], color_by: str) -> list[LegendItem]:
    counts: dict[str, tuple[int, float]] = {}
    for item in items:
        count, area = counts.get(item.category, (0, 0.0))
        counts[item.category] = (count + 1, area + item.area_mu)
    palette = CROP_COLOURS if color_by == "crop" else LAND_USE_COLOURS
    legend = []
    spare = iter(_SPARE)
    for category in sorted(counts, key=lambda c: (c == "", -counts[c][1])):
        if category == "":
            name, name_en, colour = "未登记", "not recorded", NONE_COLOUR
        elif color_by == "crop":
            name = category
            name_en = landuse.CROPS_EN.get(category, category)
            colour = palette.get(category) or next(spare, NONE_COLOUR)
        else:
            name = f"{category} {landuse.LAND_USE.get(category, '')}"
            name_en = f"{category} {landuse.LAND_USE_EN.get(category, '')}"
            colour = palette.get(category) or next(spare, NONE_COLOUR)
        legend.append(LegendItem(category, name, name_en, colour, *counts[category]))
    return legend


# --- layout shared by both renderers ------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    scale: float  # pixels per metre
    x0: float
    y0: float  # GK coordinates of the frame's lower-left corner

    def px(self, x: float, y: float) -> tuple[float, float]:
        return (
            MAP_BOX[0] + (x - self.x0) * self.scale,
            MAP_BOX[3] - (y - self.y0) * self.scale,
        )


def _frame(drawing: MapDrawing) -> _Frame:
    min_x, min_y, max_x, max_y = drawing.bounds
    span_x, span_y = max(max_x - min_x, 1.0), max(max_y - min_y, 1.0)
    box_w, box_h = MAP_BOX[2] - MAP_BOX[0], MAP_BOX[3] - MAP_BOX[1]
    scale = 0.94 * min(box_w / span_x, box_h / span_y)
    # Centre the drawing in the frame.
    x0 = min_x - (box_w / scale - span_x) / 2
    y0 = min_y - (box_h / scale - span_y) / 2
    return _Frame(scale, x0, y0)


def _scale_bar_m(frame: _Frame) -> float:
    target = (MAP_BOX[2] - MAP_BOX[0]) / 5 / frame.scale
    magnitude = 10 ** math.floor(math.log10(target))
    return float(max(m for m in (1, 2, 5, 10) if m * magnitude <= target) * magnitude)


def _colours(drawing: MapDrawing) -> dict[str, str]:
    return {item.category: item.colour for item in drawing.legend}


def _label_size(parcel: MapParcel, frame: _Frame) -> float:
    """Font size in px that fits the parcel, 0 when it does not fit."""
    min_x, min_y, max_x, max_y = parcel.shape.bounds
    width = (max_x - min_x) * frame.scale
    height = (max_y - min_y) * frame.scale
    # Five digits are about 3 em wide; keep a margin to the field's edges.
    size = min(width / 3.9, height / 1.8, 13.0)
    return size if size >= 6.5 else 0.0


def _format_m(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


# --- SVG -----------------------------------------------------------------------------------


def _path(shape: Any, frame: _Frame) -> str:
    parts = []
    for polygon in shapely.get_parts(shape):
        for ring in (polygon.exterior, *polygon.interiors):
            points = [frame.px(x, y) for x, y in ring.coords]
            parts.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points[:-1]) + " Z")
    return " ".join(parts)


def to_svg(drawing: MapDrawing) -> bytes:
    """The map as a standalone SVG document (UTF-8)."""
    frame = _frame(drawing)
    colours = _colours(drawing)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{HEIGHT_PX}" '
        f'viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}" font-family="Noto Sans CJK SC, Source Han Sans SC, '
        'WenQuanYi Zen Hei, Microsoft YaHei, sans-serif">',
        f"<title>{escape(drawing.title)}</title>",
        f'<rect width="{WIDTH_PX}" height="{HEIGHT_PX}" fill="#ffffff"/>',
        f'<text x="{WIDTH_PX / 2}" y="48" font-size="30" font-weight="bold" '
        f'text-anchor="middle">{escape(drawing.title)}</text>',
        f'<text x="{WIDTH_PX / 2}" y="80" font-size="15" fill="#555" '
        f'text-anchor="middle">{escape(drawing.subtitle)}</text>',
        f'<rect x="{MAP_BOX[0]}" y="{MAP_BOX[1]}" width="{MAP_BOX[2] - MAP_BOX[0]}" '
        f'height="{MAP_BOX[3] - MAP_BOX[1]}" fill="#f7f7f2" stroke="#222" stroke-width="1.5"/>',
        f'<g stroke="{EDGE}" stroke-width="0.6" stroke-linejoin="round">',
    ]
    for parcel in drawing.parcels:
        out.append(
            f'<path d="{_path(parcel.shape, frame)}" fill="{colours[parcel.category]}" '
            f'fill-rule="evenodd"><title>{parcel.dkbm} · {parcel.area_mu:.2f} 亩</title></path>'
        )
    out.append('</g><g fill="#222" text-anchor="middle" dominant-baseline="central">')
    for parcel in drawing.parcels:
        size = _label_size(parcel, frame)
        if size:
            point = parcel.shape.representative_point()
            x, y = frame.px(point.x, point.y)
            out.append(
                f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:.1f}">{parcel.label}</text>'
            )
    out.append("</g>")
    out.extend(_svg_legend(drawing))
    out.extend(_svg_scale_and_north(frame))
    out.append(
        f'<text x="{MAP_BOX[0]}" y="{HEIGHT_PX - 30}" font-size="12" fill="#666">'
        f"CGCS2000 3° Gauss-Krüger EPSG:{drawing.epsg} · labels: last 5 digits of the 地块编码 "
        f"(DKBM {escape(drawing.code[:14])}·····)</text>"
    )
    out.append("</svg>")
    return ("\n".join(out) + "\n").encode("utf-8")


def _svg_legend(drawing: MapDrawing) -> list[str]:
    x, y = LEGEND_AT
    heading = "图例 (地块数 / 亩)"
    out = [f'<text x="{x}" y="{y + 14}" font-size="18" font-weight="bold">{heading}</text>']
    for index, item in enumerate(drawing.legend[:24]):
        row = y + 40 + index * 30
        out.append(
            f'<rect x="{x}" y="{row}" width="28" height="18" fill="{item.colour}" '
            f'stroke="{EDGE}" stroke-width="0.8"/>'
        )
        out.append(
            f'<text x="{x + 38}" y="{row + 14}" font-size="15">{escape(item.name)}  '
            f"{item.count} / {item.area_mu:,.1f}</text>"
        )
    return out


def _svg_scale_and_north(frame: _Frame) -> list[str]:
    metres = _scale_bar_m(frame)
    length = metres * frame.scale
    x, y = SCALE_AT
    half = length / 2
    out = [
        f'<rect x="{x}" y="{y}" width="{half:.1f}" height="8" fill="#222"/>',
        f'<rect x="{x + half:.1f}" y="{y}" width="{half:.1f}" height="8" fill="#fff" '
        'stroke="#222"/>',
        f'<text x="{x}" y="{y - 6}" font-size="13">0</text>',
        f'<text x="{x + length:.1f}" y="{y - 6}" font-size="13" text-anchor="middle">'
        f"{_format_m(metres)}</text>",
    ]
    nx, ny = NORTH_AT
    out += [
        f'<polygon points="{nx},{ny} {nx - 14},{ny + 44} {nx},{ny + 34}" fill="#222"/>',
        f'<polygon points="{nx},{ny} {nx + 14},{ny + 44} {nx},{ny + 34}" fill="#fff" '
        'stroke="#222"/>',
        f'<text x="{nx}" y="{ny - 6}" font-size="18" font-weight="bold" '
        'text-anchor="middle">N</text>',
    ]
    return out


# --- PNG -----------------------------------------------------------------------------------


# The labels package ships WenQuanYi Micro Hei (Apache-2.0) so that Chinese prints anywhere.
SHIPPED_CJK_FONT = Path(__file__).resolve().parents[1] / "labels" / "fonts" / "wqy-microhei.ttc"


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The name of a font with Chinese glyphs: an installed one, else the shipped one, or None."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = next((name for name in CJK_FONTS if name in installed), None)
    if found is None and SHIPPED_CJK_FONT.is_file():
        font_manager.fontManager.addfont(str(SHIPPED_CJK_FONT))
        found = font_manager.FontProperties(fname=str(SHIPPED_CJK_FONT)).get_name()
    return found


def to_png(drawing: MapDrawing, *, dpi: int = 100) -> bytes:
    """The map as PNG, laid out like the SVG."""
    import matplotlib

    # A CJK font often ships one weight; matplotlib logs each substitution otherwise.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    matplotlib.use("Agg", force=False)
    from matplotlib.collections import PathCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib.path import Path as MplPath

    font = cjk_font()
    family = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    frame = _frame(drawing)
    colours = _colours(drawing)
    figure = Figure(figsize=(WIDTH_PX / dpi, HEIGHT_PX / dpi), dpi=dpi, facecolor="white")
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH_PX)
    ax.set_ylim(HEIGHT_PX, 0)
    ax.set_axis_off()

    def text(x: float, y: float, value: str, size: float, **kwargs: Any) -> None:
        ax.text(x, y, value, fontsize=size * 72 / dpi, family=family, **kwargs)

    title = drawing.title if font else drawing.title_en
    text(WIDTH_PX / 2, 48, title, 30, ha="center", va="baseline", weight="bold")
    text(WIDTH_PX / 2, 80, drawing.subtitle, 15, ha="center", va="baseline", color="#555")
    ax.add_patch(
        Rectangle(
            (MAP_BOX[0], MAP_BOX[1]),
            MAP_BOX[2] - MAP_BOX[0],
            MAP_BOX[3] - MAP_BOX[1],
            facecolor="#f7f7f2",
            edgecolor="#222",
            linewidth=1.5 * 72 / dpi,
        )
    )
    paths, faces = [], []
    for parcel in drawing.parcels:
        vertices: list[tuple[float, float]] = []
        path_codes: list[np.uint8] = []
        for polygon in shapely.get_parts(parcel.shape):
            for ring in (polygon.exterior, *polygon.interiors):
                points = [frame.px(x, y) for x, y in ring.coords]
                vertices.extend(points)
                path_codes.extend(
                    [MplPath.MOVETO] + [MplPath.LINETO] * (len(points) - 2) + [MplPath.CLOSEPOLY]
                )
        paths.append(MplPath(vertices, path_codes))
        faces.append(colours[parcel.category])
    ax.add_collection(
        PathCollection(paths, facecolors=faces, edgecolors=EDGE, linewidths=0.6 * 72 / dpi)
    )
    for parcel in drawing.parcels:
        size = _label_size(parcel, frame)
        if size:
            point = parcel.shape.representative_point()
            x, y = frame.px(point.x, point.y)
            text(x, y, parcel.label, size, ha="center", va="center", color="#222")
    _png_furniture(ax, text, drawing, frame, font=font, dpi=dpi)
    footer = (
        f"CGCS2000 3° Gauss-Krüger EPSG:{drawing.epsg} · labels: last 5 digits of the DKBM "
        f"({drawing.code[:14]}·····)"
    )
    text(MAP_BOX[0], HEIGHT_PX - 30, footer, 12, color="#666", va="baseline")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _png_furniture(
    ax: Any,
    text: Callable[..., None],
    drawing: MapDrawing,
    frame: _Frame,
    *,
    font: str | None,
    dpi: int,
) -> None:
    """The PNG map's legend, scale bar and north arrow, placed as the SVG places them."""
    from matplotlib.patches import Polygon as PolygonPatch
    from matplotlib.patches import Rectangle

    # Legend.
    lx, ly = LEGEND_AT
    heading = "图例 (地块数 / 亩)" if font else "Legend (parcels / mu)"
    text(lx, ly + 14, heading, 18, weight="bold", va="baseline")
    for index, item in enumerate(drawing.legend[:24]):
        row = ly + 40 + index * 30
        ax.add_patch(
            Rectangle(
                (lx, row), 28, 18, facecolor=item.colour, edgecolor=EDGE, linewidth=0.8 * 72 / dpi
            )
        )
        name = item.name if font else item.name_en
        text(lx + 38, row + 14, f"{name}  {item.count} / {item.area_mu:,.1f}", 15, va="baseline")
    # Scale bar.
    metres = _scale_bar_m(frame)
    length = metres * frame.scale
    sx, sy = SCALE_AT
    ax.add_patch(Rectangle((sx, sy), length / 2, 8, facecolor="#222", edgecolor="#222"))
    ax.add_patch(
        Rectangle(
            (sx + length / 2, sy), length / 2, 8, facecolor="#fff", edgecolor="#222", linewidth=0.7
        )
    )
    text(sx, sy - 6, "0", 13, va="baseline")
    text(sx + length, sy - 6, _format_m(metres), 13, ha="center", va="baseline")
    # North arrow.
    nx, ny = NORTH_AT
    ax.add_patch(PolygonPatch([(nx, ny), (nx - 14, ny + 44), (nx, ny + 34)], facecolor="#222"))
    ax.add_patch(
        PolygonPatch(
            [(nx, ny), (nx + 14, ny + 44), (nx, ny + 34)],
            facecolor="#fff",
            edgecolor="#222",
            linewidth=0.7,
        )
    )
    text(nx, ny - 6, "N", 18, ha="center", va="baseline", weight="bold")
