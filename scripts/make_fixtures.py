"""Generate the sample village in fixtures/: regions, a cooperative, households and parcels.

The data is invented but shaped like the real thing: one township of 旌阳区 (孝泉镇), two
villages with four groups each, a rapeseed and rice cooperative, forty households and a few
hundred parcels laid out as field blocks separated by 1 m ridges. Deterministic: running it
twice gives byte-identical files.

    python scripts/make_fixtures.py [--out fixtures]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from pyproj import Transformer
from shapely.geometry import Polygon

from digital_village.regions.uscc import compute_check_character

TOWNSHIP = "510603101"  # 孝泉镇
VILLAGES = [("510603101201", "民安村"), ("510603101202", "清平村")]
GROUPS_PER_VILLAGE = 4
GROUP_NAMES = ["一组", "二组", "三组", "四组", "五组", "六组"]
HOUSEHOLDS_PER_GROUP = 5
PARCELS_PER_GROUP = 40
RIDGE = 1.0  # metres of 田埂 between neighbouring fields
# South-west corner of the first block, in CGCS2000 / 3-degree GK CM 105E (EPSG:4544):
# about 104.27 E, 31.26 N, the farmland west of 孝泉镇.
ORIGIN_E, ORIGIN_N = 430_600.0, 3_459_500.0
BLOCK_GAP = 25.0  # a track between the groups' blocks
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["建国", "秀英", "志强", "桂芳", "德明", "玉兰", "永福", "淑珍", "光明", "春梅"]


def sample_uscc() -> str:
    """A well-formed 统一社会信用代码: 9 (农业) 3 (农民专业合作社), 旌阳区, a made-up serial."""
    first17 = "93" + "510603" + "MA6" + "DX0001"
    return first17 + compute_check_character(first17)


BLOCK_W, BLOCK_H = 300.0, 250.0  # metres: one group's fields
ROWS = 5


def block_fields(rng: random.Random, east: float, north: float) -> list[list[tuple[float, float]]]:
    """PARCELS_PER_GROUP irregular fields of 0.5-10 亩 tiling a block, 1 m ridges between them.

    The block is cut into rows by tilted lines, and each row into fields by slanted
    dividers; neighbours share their cut lines exactly, and every field is then shrunk by
    half a ridge, so no two fields overlap. Field sizes vary as small-holder plots do.
    """
    heights = [rng.uniform(0.7, 1.3) for _ in range(ROWS)]
    cuts = [0.0]
    for height in heights:
        cuts.append(cuts[-1] + height / sum(heights) * BLOCK_H)
    tilts = [0.0] + [rng.uniform(-0.04, 0.04) for _ in range(ROWS - 1)] + [0.0]
    counts = [PARCELS_PER_GROUP // ROWS] * ROWS
    fields = []
    for row in range(ROWS):
        y_low, y_high = cuts[row], cuts[row + 1]
        n = counts[row]
        weights = [rng.uniform(0.35, 1.9) for _ in range(n)]
        total = sum(weights)
        xs = [0.0]
        for weight in weights[:-1]:
            xs.append(xs[-1] + weight / total * BLOCK_W)
        xs.append(BLOCK_W)
        slants = [0.0] + [rng.uniform(-6, 6) for _ in range(n - 1)] + [0.0]
        for i in range(n):
            left_low, left_high = xs[i] - slants[i], xs[i] + slants[i]
            right_low, right_high = xs[i + 1] - slants[i + 1], xs[i + 1] + slants[i + 1]
            corners = [
                (left_low, y_low + tilts[row] * (left_low - BLOCK_W / 2)),
                (right_low, y_low + tilts[row] * (right_low - BLOCK_W / 2)),
                (right_high, y_high + tilts[row + 1] * (right_high - BLOCK_W / 2)),
                (left_high, y_high + tilts[row + 1] * (left_high - BLOCK_W / 2)),
            ]
            shrunk = Polygon(corners).buffer(-RIDGE / 2, join_style="mitre")
            fields.append([(east + x, north + y) for x, y in shrunk.exterior.coords])
    return fields


def build(out: Path) -> None:
    rng = random.Random(510603)
    to_lonlat = Transformer.from_crs("EPSG:4544", "EPSG:4490", always_xy=True)
    villages = []
    households = []
    features = []
    for v_index, (v_code, v_name) in enumerate(VILLAGES):
        groups = []
        for g in range(1, GROUPS_PER_VILLAGE + 1):
            g_code = f"{v_code}{g:02d}"
            groups.append({"code": g_code, "name": GROUP_NAMES[g - 1]})
            members = []
            for _ in range(HOUSEHOLDS_PER_GROUP):
                key = f"h{len(households) + 1:03d}"
                members.append(key)
                households.append(
                    {
                        "key": key,
                        "region_code": g_code,
                        "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
                        "phone": f"1380838{rng.randrange(10_000):04d}",
                        "member": rng.random() < 0.8,
                    }
                )
            block_e = ORIGIN_E + (g - 1) % 2 * (BLOCK_W + BLOCK_GAP)
            block_n = ORIGIN_N + (v_index * 2 + (g - 1) // 2) * (BLOCK_H + BLOCK_GAP)
            for field in block_fields(rng, block_e, block_n):
                ring = [[round(c, 8) for c in to_lonlat.transform(x, y)] for x, y in field]
                paddy = rng.random() < 0.75
                owner = rng.randrange(HOUSEHOLDS_PER_GROUP)
                features.append(
                    {
                        "type": "Feature",
                        "properties": {
                            "fbfbm": g_code,
                            "household": members[owner],
                            "cbfbm": f"{g_code}{owner + 1:04d}",
                            "land_use": "0101" if paddy else "0103",
                            "crop_summer": "水稻" if paddy else "玉米",
                            "crop_winter": "油菜" if rng.random() < 0.85 else "小麦",
                        },
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                    }
                )
        villages.append({"code": v_code, "name": v_name, "groups": groups})
    village = {
        "township": TOWNSHIP,
        "villages": villages,
        "cooperative": {
            "uscc": sample_uscc(),
            "name": "德阳市旌阳区孝泉镇民安油菜专业合作社",
            "region_code": VILLAGES[0][0],
        },
        "households": households,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "sample-village.json").write_text(
        json.dumps(village, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    parcels = {"type": "FeatureCollection", "features": features}
    (out / "sample-parcels.geojson").write_text(
        json.dumps(parcels, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    print(f"wrote {len(households)} households and {len(features)} parcels to {out}/")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "fixtures"
    )
    build(parser.parse_args().out)
