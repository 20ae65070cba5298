"""NY/T 2539-2016 (农村土地承包经营权确权登记数据库规范) as this system reads and writes it:
the fields of the DK layer and of the ownership tables, their code tables (appendix C), and
the GB/T 35958-2018 structure of 承包方 and contract codes. Pure: no ORM, no web.

Codes (GB/T 35958-2018): FBFBM 14 digits (county 6 + township 3 + village 3 + group 2);
DKBM = FBFBM + 5; CBFBM = FBFBM + 4, numbered 0001-8000 for households (农户), 8001-9000 for
individuals (个人), 9001-9999 for organisations (单位); a contract (CBHTBM) and its certificate
(CBJYQZBM) are the CBFBM and one letter (J 家庭承包, Q 其他方式承包).
"""

from __future__ import annotations

import datetime as dt
import re

from digital_village.registry.dbf import Field

DK_FEATURE_CODE = "211011"  # YSDM of 承包地块 in the package's feature catalogue

# Field lists in the order NY/T 2539 gives them, with the widths the export writes.
DK_FIELDS = (
    Field("BSM", "N", 10),
    Field("YSDM", "C", 6),
    Field("DKBM", "C", 19),
    Field("DKMC", "C", 50),
    Field("SYQXZ", "C", 2),
    Field("DKLB", "C", 2),
    Field("TDLYLX", "C", 3),
    Field("DLDJ", "C", 2),
    Field("TDYT", "C", 1),
    Field("SFJBNT", "C", 1),
    Field("SCMJ", "N", 15, 2),
    Field("SCMJM", "N", 15, 2),
    Field("DKDZ", "C", 50),
    Field("DKXZ", "C", 50),
    Field("DKNZ", "C", 50),
    Field("DKBZ", "C", 50),
    Field("DKBZXX", "C", 254),
    Field("ZJRXM", "C", 100),
)
TABLE_FIELDS: dict[str, tuple[Field, ...]] = {
    "FBF": (
        Field("FBFBM", "C", 14),
        Field("FBFMC", "C", 50),
        Field("FBFFZRXM", "C", 50),
        Field("FZRZJLX", "C", 1),
        Field("FZRZJHM", "C", 30),
        Field("LXDH", "C", 15),
        Field("FBFDZ", "C", 100),
        Field("YZBM", "C", 6),
        Field("FBFDCY", "C", 254),
        Field("FBFDCRQ", "D", 8),
        Field("FBFDCJS", "C", 254),
    ),
    "CBF": (
        Field("CBFBM", "C", 18),
        Field("CBFLX", "C", 1),
        Field("CBFMC", "C", 50),
        Field("CBFZJLX", "C", 1),
        Field("CBFZJHM", "C", 20),
        Field("CBFDZ", "C", 100),
        Field("YZBM", "C", 6),
        Field("LXDH", "C", 20),
        Field("CBFCYSL", "N", 2),
        Field("CBFDCRQ", "D", 8),
        Field("CBFDCY", "C", 50),
        Field("CBFDCJS", "C", 254),
        Field("GSJS", "C", 254),
        Field("GSJSR", "C", 50),
        Field("GSSHRQ", "D", 8),
        Field("GSSHR", "C", 50),
    ),
    "CBF_JTCY": (
        Field("CBFBM", "C", 18),
        Field("CYXM", "C", 50),
        Field("CYXB", "C", 1),
        Field("CYZJLX", "C", 1),
        Field("CYZJHM", "C", 20),
        Field("YHZGX", "C", 2),
        Field("CYBZ", "C", 1),
        Field("SFGYR", "C", 1),
        Field("CYBZSM", "C", 254),
    ),
    "CBHT": (
        Field("CBHTBM", "C", 19),
        Field("YCBHTBM", "C", 19),
        Field("FBFBM", "C", 14),
        Field("CBFBM", "C", 18),
        Field("CBFS", "C", 3),
        Field("CBQXQ", "D", 8),
        Field("CBQXZ", "D", 8),
        Field("HTZMJ", "N", 15, 2),
        Field("CBDKZS", "N", 3),
        Field("QDSJ", "D", 8),
        Field("HTZMJM", "N", 15, 2),
        Field("YHTZMJ", "N", 15, 2),
        Field("YHTZMJM", "N", 15, 2),
    ),
    "CBDKXX": (
        Field("DKBM", "C", 19),
        Field("FBFBM", "C", 14),
        Field("CBFBM", "C", 18),
        Field("CBJYQQDFS", "C", 3),
        Field("HTMJ", "N", 15, 2),
        Field("CBHTBM", "C", 19),
        Field("LZHTBM", "C", 18),
        Field("CBJYQZBM", "C", 19),
        Field("YHTMJ", "N", 15, 2),
        Field("HTMJM", "N", 15, 2),
        Field("YHTMJM", "N", 15, 2),
        Field("SFQQQG", "C", 1),
    ),
    "CBJYQZ": (
        Field("CBJYQZBM", "C", 19),
        Field("FZJG", "C", 50),
        Field("FZRQ", "D", 8),
        Field("QZSFLQ", "C", 1),
        Field("QZLQRQ", "D", 8),
        Field("QZLQRXM", "C", 50),
        Field("QZLQRZJLX", "C", 1),
        Field("QZLQRZJHM", "C", 20),
    ),
}
TABLES = tuple(TABLE_FIELDS)
REQUIRED_TABLES = ("FBF", "CBF", "CBHT", "CBDKXX")

# Appendix C code tables.
OWNERSHIP = {
    "10": "国有土地所有权",
    "30": "集体土地所有权",
    "31": "村民小组",
    "32": "村级集体经济组织",
}
OWNERSHIP |= {"33": "乡级集体经济组织", "34": "其他农民集体经济组织"}  # C.6 SYQXZ
PARCEL_KINDS = {
    "10": "承包地块",
    "21": "自留地",
    "22": "机动地",
    "23": "开荒地",
    "99": "其他集体土地",
}
SOIL_GRADES = {f"{n:02d}": f"{n}等地" for n in range(1, 11)}  # C.8 DLDJ
LAND_PURPOSES = {"1": "种植业", "2": "林业", "3": "畜牧业", "4": "渔业", "5": "非农业用途"}  # C.9
ACQUIRED_BY = {  # C.10 CBFS / CBJYQQDFS
    "100": "承包",
    "110": "家庭承包",
    "120": "其他方式承包",
    "121": "招标",
    "122": "拍卖",
    "123": "公开协商",
    "129": "其他方式",
    "200": "转让",
    "300": "互换",
    "900": "其他方式",
}
ID_TYPES = {  # C.15
    "1": "居民身份证",
    "2": "军官证",
    "3": "行政、企事业单位机构代码证或法人代码证",
    "4": "户口簿",
    "5": "护照",
    "9": "其他证件",
}
CONTRACTOR_KINDS = {"1": "农户", "2": "个人", "3": "单位"}  # C.16 CBFLX
SEXES = {"1": "男", "2": "女"}  # C.17
MEMBER_NOTES = {  # C.18 CYBZ
    "1": "外嫁女",
    "2": "入赘男",
    "3": "在校大学生",
    "4": "国家公职人员",
    "5": "军人",
    "6": "新生儿",
    "7": "去世",
    "9": "其他备注",
}
YES_NO = {"1": "是", "2": "否"}  # C.19
# CBFBM sequence ranges by 承包方类型.
CONTRACTOR_RANGES = {"1": (1, 8000), "2": (8001, 9000), "3": (9001, 9999)}

# TDLYLX: NY/T 2539-2016 uses the GB/T 21010-2007 classes; this system the 2017 ones.
LAND_USE_2007 = {
    "011": "0101",
    "012": "0102",
    "013": "0103",
    "021": "0201",
    "022": "0202",
    "023": "0204",
    "031": "0301",
    "032": "0305",
    "033": "0307",
    "041": "0401",
    "042": "0403",
    "043": "0404",
    "114": "1104",
    "122": "1202",
    "123": "1203",
}
LAND_USE_TO_2007 = {new: old for old, new in LAND_USE_2007.items()}

_DIGITS = re.compile(r"^[0-9]+$")
_DATE = re.compile(r"^(\d{4})[-/.]?(\d{1,2})[-/.]?(\d{1,2})(?:[ T].*)?$")


def check_cbfbm(code: str, kind: str | None) -> str | None:
    """Why a 承包方编码 is wrong for its 承包方类型 (None when it is right)."""
    if len(code) != 18 or not _DIGITS.match(code):
        return f"CBFBM {code!r} must be 18 digits (FBFBM + 4)"
    sequence = int(code[14:])
    if kind in CONTRACTOR_RANGES:
        low, high = CONTRACTOR_RANGES[kind]
        if not low <= sequence <= high:
            return (
                f"CBFBM {code} ends in {code[14:]}, outside {low:04d}-{high:04d} for "
                f"承包方类型 {kind} ({CONTRACTOR_KINDS[kind]}) (GB/T 35958)"
            )
    elif sequence == 0:
        return f"CBFBM {code} ends in 0000; 承包方 are numbered from 0001"
    return None


def check_contract_code(code: str, cbfbm: str, what: str) -> str | None:
    """Why a 19-character contract or certificate code does not belong to its CBFBM."""
    if len(code) != 19:
        return f"{what} {code!r} must be 19 characters (CBFBM + J or Q)"
    if code[:18] != cbfbm:
        return f"{what} {code} does not start with its CBFBM {cbfbm}"
    if code[18] not in "JQ":
        return f"{what} {code} must end in J (家庭承包) or Q (其他方式承包), not {code[18]!r}"
    return None


def parse_date(text: str) -> dt.date:
    """A date as packages write them: 20160315, 2016-03-15, 2016/3/15 (a time is ignored)."""
    found = _DATE.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a date (YYYYMMDD or YYYY-MM-DD)")
    year, month, day = (int(part) for part in found.groups())
    return dt.date(year, month, day)


def parse_number(text: str) -> float:
    """A non-negative number as packages write it."""
    value = float(text.replace(",", ""))
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{text!r} is not a non-negative number")
    return value


def land_use_of(tdlylx: str) -> str | None:
    """The GB/T 21010-2017 class of a TDLYLX code (2007 three-digit or 2017 four-digit)."""
    if tdlylx in LAND_USE_2007:
        return LAND_USE_2007[tdlylx]
    return tdlylx if len(tdlylx) == 4 and tdlylx in LAND_USE_TO_2007 else None
