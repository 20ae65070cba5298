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

from digital_village.regions.uscc import compute_check_character

TOWNSHIP = "510603101"  # 孝泉镇
VILLAGES = [("510603101201", "民安村"), ("510603101202", "清平村")]
GROUPS_PER_VILLAGE = 4
GROUP_NAMES = ["一组", "二组", "三组", "四组", "五组", "六组"]
HOUSEHOLDS_PER_GROUP = 5
PARCEL_ROWS, PARCEL_COLS = 5, 8  # per group: 40 parcels
PARCEL_W, PARCEL_H, RIDGE = 36.0, 28.0, 1.0  # metres: ~1.5 亩 fields and 1 m ridges
# South-west corner of the first block, in CGCS2000 / 3-degree GK CM 105E (EPSG:4544),
# which puts the fields around 104.27 E, 31.25 N, west of 孝泉镇.
ORIGIN_E, ORIGIN_N = 474_400.0, 3_457_300.0
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["建国", "秀英", "志强", "桂芳", "德明", "玉兰", "永福", "淑珍", "光明", "春梅"]


def sample_uscc() -> str:
    """A well-formed 统一社会信用代码: 9 (农业) 3 (农民专业合作社), 旌阳区, a made-up serial."""
    first17 = "93" + "510603" + "MA6" + "DX0001"
    return first17 + compute_check_character(first17)


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
            block_e = ORIGIN_E + (g - 1) * (PARCEL_COLS * (PARCEL_W + RIDGE) + 20)
            block_n = ORIGIN_N + v_index * (PARCEL_ROWS * (PARCEL_H + RIDGE) + 40)
            for row in range(PARCEL_ROWS):
                for col in range(PARCEL_COLS):
                    x0 = block_e + col * (PARCEL_W + RIDGE)
                    y0 = block_n + row * (PARCEL_H + RIDGE)
                    corners = [
                        (x0, y0),
                        (x0 + PARCEL_W, y0),
                        (x0 + PARCEL_W, y0 + PARCEL_H),
                        (x0, y0 + PARCEL_H),
                        (x0, y0),
                    ]
                    ring = [[round(c, 8) for c in to_lonlat.transform(x, y)] for x, y in corners]
                    paddy = rng.random() < 0.7
                    features.append(
                        {
                            "type": "Feature",
                            "properties": {
                                "fbfbm": g_code,
                                "household": rng.choice(members),
                                "land_use": "0101" if paddy else "0103",
                                "crop_summer": "水稻" if paddy else "玉米",
                                "crop_winter": "油菜",
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
