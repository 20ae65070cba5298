"""Generated 确权 exchange packages: the county's 发包方, households with their members,
contracts and parcels of field-like shapes, written the way county packages come (GBK text,
with or without .cpg; .dbf or .csv tables; CGCS2000 3° GK with or without the zone number).

Shapes are quadrilaterals with jittered corners at sub-centimetre positions in rows along a
village's fields, some with a vertex a few millimetres from its neighbour (what surveyed
boundaries look like), laid out so that no two overlap.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapely.geometry import Polygon

from digital_village.registry import writer

COUNTY = "510603"
TOWNSHIP = "510603101"  # 孝泉镇
ORIGIN_E, ORIGIN_N = 430_000.0, 3_459_000.0  # EPSG:4544 metres near 孝泉镇
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN = "建国明华秀英志强桂兰春梅玉珍德华文军海燕丽娟永红晓东国庆小平德明淑芬金凤"


@dataclass
class Spec:
    villages: int = 2
    groups: int = 2  # per village
    households: int = 5  # per group
    parcels: int = 3  # per household
    seed: int = 14
    field_m: float = 30.0
    degenerate_every: int = 7  # every n-th parcel gets a vertex millimetres from another
    extra_parcel_every: int = 0  # every n-th household holds one parcel more (0: none)
    blocks_per_row: int = 50  # group blocks in a row of villages, so a county stays in a zone


@dataclass
class Generated:
    """The package's rows, table by table, and the DK layer's rows and shapes (GK metres)."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    dk: list[dict[str, Any]] = field(default_factory=list)
    shapes: list[Polygon] = field(default_factory=list)


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))


def _id_number(rng: random.Random, start_year: int, span_days: int) -> str:
    born = dt.date(start_year, 1, 1) + dt.timedelta(rng.randint(0, span_days))
    body = f"{COUNTY}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    return body + check


def _field(rng: random.Random, x: float, y: float, size: float, degenerate: bool) -> Polygon:
    """A jittered quadrilateral inside a size × size cell (so neighbours never overlap)."""
    inset = size * 0.1

    def corner(cx: float, cy: float) -> tuple[float, float]:
        return (cx + rng.uniform(0, inset) + rng.random() * 0.01, cy + rng.uniform(0, inset))

    a = corner(x, y)
    b = corner(x + size - inset, y)
    c = corner(x + size - inset, y + size * 0.8)
    d = corner(x, y + size * 0.8)
    ring = [a, b, c, d]
    if degenerate:  # a vertex 3-6 mm beside the next corner, as field surveys leave them
        ring.insert(2, (b[0] + rng.uniform(-0.003, -0.006), b[1] + rng.uniform(0.003, 0.006)))
    return Polygon(ring)


def generate(spec: Spec) -> Generated:
    """Rows and shapes for ``spec``: FBF per group, CBF + CBF_JTCY, CBHT + CBJYQZ, CBDKXX, DK."""
    rng = random.Random(spec.seed)
    out = Generated({name: [] for name in ("FBF", "CBF", "CBF_JTCY", "CBHT", "CBDKXX", "CBJYQZ")})
    bsm = 0
    per_row = 40
    most = spec.households * (spec.parcels + (1 if spec.extra_parcel_every else 0))
    block_w = (per_row + 2) * spec.field_m
    block_h = (-(-most // per_row) + 2) * spec.field_m
    group_cols = max(1, math.isqrt(spec.groups - 1) + 1) if spec.groups > 1 else 1
    group_rows = -(-spec.groups // group_cols)
    village_cols = max(1, spec.blocks_per_row // group_cols)
    for v in range(spec.villages):
        village = f"{TOWNSHIP}{201 + v:03d}"
        for g in range(spec.groups):
            fbfbm = f"{village}{g + 1:02d}"
            # A village's groups lie together (a village is a few km across), the villages in
            # rows of blocks, so a county stays in its zone.
            col, row = g % group_cols, g // group_cols
            village_col, village_row = v % village_cols, v // village_cols
            block_x = ORIGIN_E + (village_col * group_cols + col) * block_w
            block_y = ORIGIN_N + (village_row * group_rows + row) * block_h
            out.tables["FBF"].append(
                {
                    "FBFBM": fbfbm,
                    "FBFMC": f"民安{v + 1}村{g + 1}组",
                    "FBFFZRXM": _name(rng),
                    "FZRZJLX": "1",
                    "FZRZJHM": _id_number(rng, 1960, 9000),
                    "LXDH": f"138{rng.randint(0, 99_999_999):08d}",
                    "FBFDZ": f"四川省德阳市旌阳区孝泉镇民安{v + 1}村",
                    "YZBM": "618000",
                    "FBFDCY": "张调查",
                    "FBFDCRQ": "20160315",
                    "FBFDCJS": "",
                },
            )
            number = 0
            for h in range(spec.households):
                cbfbm = f"{fbfbm}{h + 1:04d}"
                members = rng.randint(1, 5)
                head = _name(rng)
                out.tables["CBF"].append(
                    {
                        "CBFBM": cbfbm,
                        "CBFLX": "1",
                        "CBFMC": head,
                        "CBFZJLX": "1",
                        "CBFZJHM": _id_number(rng, 1950, 15000),
                        "CBFDZ": f"孝泉镇民安{v + 1}村{g + 1}组{h + 1}号",
                        "YZBM": "618000",
                        "LXDH": f"139{rng.randint(0, 99_999_999):08d}",
                        "CBFCYSL": members,
                        "CBFDCRQ": "20160320",
                        "CBFDCY": "张调查",
                        "GSJSR": "李公示",
                        "GSSHRQ": "20160401",
                        "GSSHR": "王审核",
                    }
                )
                for m in range(members):
                    out.tables["CBF_JTCY"].append(
                        {
                            "CBFBM": cbfbm,
                            "CYXM": head if m == 0 else _name(rng),
                            "CYXB": rng.choice("12"),
                            "CYZJLX": "1",
                            "CYZJHM": _id_number(rng, 1950, 20000),
                            "YHZGX": "02" if m == 0 else rng.choice(["10", "20", "30"]),
                            "SFGYR": "1",
                        }
                    )
                cbhtbm = cbfbm + "J"
                links = []
                extra = spec.extra_parcel_every and (h + 1) % spec.extra_parcel_every == 0
                for _ in range(spec.parcels + (1 if extra else 0)):
                    number += 1
                    bsm += 1
                    dkbm = f"{fbfbm}{number:05d}"
                    col, row = (number - 1) % per_row, (number - 1) // per_row
                    x, y = block_x + col * spec.field_m, block_y + row * spec.field_m
                    shape = _field(rng, x, y, spec.field_m, bsm % spec.degenerate_every == 0)
                    area = round(shape.area * rng.uniform(0.995, 1.005), 2)
                    out.shapes.append(shape)
                    out.dk.append(
                        {
                            "BSM": bsm,
                            "YSDM": "211011",
                            "DKBM": dkbm,
                            "DKMC": rng.choice(["大田", "河坝田", "坡地", "堰塘边", "竹林湾"]),
                            "SYQXZ": "31",
                            "DKLB": "10",
                            "TDLYLX": rng.choice(["011", "011", "013"]),
                            "DLDJ": f"{rng.randint(1, 10):02d}",
                            "TDYT": "1",
                            "SFJBNT": rng.choice("12"),
                            "SCMJ": area,
                            "SCMJM": round(area / (10000 / 15), 2),
                            "DKDZ": "路",
                            "DKXZ": "沟",
                            "DKNZ": "田",
                            "DKBZ": "田",
                            "DKBZXX": "",
                            "ZJRXM": head,
                        }
                    )
                    links.append((dkbm, area))
                    out.tables["CBDKXX"].append(
                        {
                            "DKBM": dkbm,
                            "FBFBM": fbfbm,
                            "CBFBM": cbfbm,
                            "CBJYQQDFS": "110",
                            "HTMJ": area,
                            "CBHTBM": cbhtbm,
                            "CBJYQZBM": cbhtbm,
                            "HTMJM": round(area / (10000 / 15), 2),
                            "SFQQQG": "2",
                        }
                    )
                total = round(sum(area for _, area in links), 2)
                out.tables["CBHT"].append(
                    {
                        "CBHTBM": cbhtbm,
                        "FBFBM": fbfbm,
                        "CBFBM": cbfbm,
                        "CBFS": "110",
                        "CBQXQ": "19981001",
                        "CBQXZ": "20280930",
                        "HTZMJ": total,
                        "CBDKZS": len(links),
                        "QDSJ": "20160501",
                        "HTZMJM": round(total / (10000 / 15), 2),
                    }
                )
                out.tables["CBJYQZ"].append(
                    {
                        "CBJYQZBM": cbhtbm,
                        "FZJG": "德阳市旌阳区人民政府",
                        "FZRQ": "20161201",
                        "QZSFLQ": "1",
                    }
                )
    return out


def write(
    generated: Generated,
    folder: Path,
    *,
    tables: str = "dbf",
    cpg: bool = True,
    prj: bool = True,
    zone_prefix: bool = False,
    encoding: str = "gbk",
) -> Path:
    """Write a package folder; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    shapes = generated.shapes
    crs = "EPSG:4544"
    if zone_prefix:
        from shapely.affinity import translate

        shapes = [translate(shape, 35_000_000) for shape in shapes]
        crs = "EPSG:4523"
    writer.write_dk(
        folder / "DK5106032016.shp",
        generated.dk,
        shapes,
        crs=crs,
        encoding=encoding,
        cpg=cpg,
        prj=prj,
    )
    if tables == "xlsx":
        write_workbook(generated, folder / "确权成果.xlsx")
        return folder
    for name, rows in generated.tables.items():
        writer.write_table(folder / f"{name}.{tables}", name, rows, encoding=encoding, cpg=cpg)
    return folder


def write_workbook(generated: Generated, path: Path, *, names: tuple[str, ...] = ()) -> None:
    """The ownership tables as one Excel workbook, a sheet per table, cells typed as a clerk's
    spreadsheet has them: dates as dates, areas as numbers, codes as text."""
    from openpyxl import Workbook

    from digital_village.registry import nyt2539

    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in generated.tables.items():
        if names and name not in names:
            continue
        sheet = workbook.create_sheet(name)
        fields = nyt2539.TABLE_FIELDS[name]
        sheet.append([f.name for f in fields])
        for row in rows:
            values: list[Any] = []
            for column in fields:
                value = row.get(column.name)
                if column.kind == "D" and value:
                    value = nyt2539.parse_date(str(value))
                elif column.kind in "NF" and value not in (None, ""):
                    value = float(value)
                values.append(None if value == "" else value)
            sheet.append(values)
    workbook.save(path)
