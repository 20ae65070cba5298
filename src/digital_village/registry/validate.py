"""Checking every record of a package on its own and against the others: codes, code tables,
numbers, dates, and how the tables refer to each other. Pure: no database.

Each bad record becomes a ``Rejection`` naming the table, the row (1-based), the record's code
and the field; a record that refers to a rejected or unknown one is rejected too, saying so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from digital_village.parcels import codes
from digital_village.registry import nyt2539
from digital_village.registry.package import DkFeature, Package


@dataclass(frozen=True)
class Rejection:
    table: str
    record: int
    key: str
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "record": self.record,
            "key": self.key,
            "field": self.field,
            "reason": self.reason,
        }


class Bad(ValueError):
    """One field of one record is wrong."""

    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


@dataclass
class CollectiveIn:
    fbfbm: str
    name: str
    surveyed_on: dt.date | None
    record: dict[str, str]
    sha256: str


@dataclass
class MemberIn:
    name: str
    sex: str | None
    id_type: str | None
    id_number: str | None
    relation: str | None
    co_owner: bool | None
    record: dict[str, str]


@dataclass
class HouseholdIn:
    cbfbm: str
    kind: str
    name: str
    id_type: str
    id_number: str
    record: dict[str, str]
    members: list[MemberIn] = field(default_factory=list)
    sha256: str = ""


@dataclass
class LinkIn:
    dkbm: str
    cbfbm: str
    cbhtbm: str
    acquired_by: str
    area_m2: float
    by_share: bool | None
    record: dict[str, str]


@dataclass
class ContractIn:
    cbhtbm: str
    fbfbm: str
    cbfbm: str
    method: str
    period_from: dt.date | None
    period_to: dt.date | None
    area_m2: float
    parcel_count: int
    signed_on: dt.date | None
    record: dict[str, Any]
    certificate: str | None = None
    links: list[LinkIn] = field(default_factory=list)
    sha256: str = ""


@dataclass
class ParcelRecordIn:
    row: int
    dkbm: str
    fbfbm: str
    land_use: str
    name: str | None
    registered_area_m2: float | None
    record: dict[str, str]
    wkb: bytes
    sha256: str
    cbfbm: str | None = None  # the household CBDKXX puts it under


@dataclass
class Checked:
    """The package's good records, keyed by their codes, and every rejection."""

    collectives: dict[str, CollectiveIn] = field(default_factory=dict)
    households: dict[str, HouseholdIn] = field(default_factory=dict)
    contracts: dict[str, ContractIn] = field(default_factory=dict)
    parcels: dict[str, ParcelRecordIn] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)


def _sha(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _required(row: dict[str, str], column: str) -> str:
    value = row.get(column, "")
    if not value:
        raise Bad(column, f"{column} is empty")
    return value


def _coded(row: dict[str, str], column: str, table: dict[str, str], *, need: bool) -> str | None:
    value = row.get(column, "")
    if not value:
        if need:
            raise Bad(column, f"{column} is empty")
        return None
    if value not in table:
        allowed = ", ".join(f"{k} {v}" for k, v in list(table.items())[:6])
        raise Bad(column, f"{column} {value!r} is not in its NY/T 2539 code table ({allowed}…)")
    return value


def _date(row: dict[str, str], column: str) -> dt.date | None:
    value = row.get(column, "")
    if not value:
        return None
    try:
        return nyt2539.parse_date(value)
    except ValueError as error:
        raise Bad(column, f"{column}: {error}") from None


def _number(row: dict[str, str], column: str, *, need: bool = True) -> float | None:
    value = row.get(column, "")
    if not value:
        if need:
            raise Bad(column, f"{column} is empty")
        return None
    try:
        return nyt2539.parse_number(value)
    except ValueError:
        raise Bad(column, f"{column} {value!r} is not a non-negative number") from None


def _yes_no(row: dict[str, str], column: str) -> bool | None:
    value = _coded(row, column, nyt2539.YES_NO, need=False)
    return None if value is None else value == "1"


class _Checker:
    """Runs the per-table checks, collecting rejections."""

    def __init__(self, package: Package, county: str, townships: set[str]) -> None:
        self.package = package
        self.county = county
        self.townships = townships
        self.out = Checked()
        self._fbfbms: dict[tuple[str, str], str | Bad] = {}

    def reject(self, table: str, row: int, key: str, column: str | None, reason: str) -> None:
        self.out.rejected.append(Rejection(table, row, key, column, reason))

    def each(
        self, name: str, key_column: str, check: Callable[[int, dict[str, str], str], None]
    ) -> None:
        table = self.package.tables.get(name)
        for number, row in enumerate(table.rows if table else [], start=1):
            key = row.get(key_column, "")
            try:
                check(number, row, key)
            except Bad as bad:
                self.reject(name, number, key, bad.column, bad.reason)

    def fbfbm(self, text: str, column: str = "FBFBM") -> str:
        """The checked 发包方 code (a package names each many times: checked once)."""
        found = self._fbfbms.get((text, column))
        if found is None:
            found = self._fbfbms[(text, column)] = self._check_fbfbm(text, column)
        if isinstance(found, Bad):
            raise found
        return found

    def _check_fbfbm(self, text: str, column: str) -> str | Bad:
        try:
            return self._parse_fbfbm(text, column)
        except Bad as bad:
            return bad

    def _parse_fbfbm(self, text: str, column: str) -> str:
        try:
            parsed = codes.parse_fbfbm(text)
        except codes.CodeError as error:
            raise Bad(column, f"{column}: {error}") from None
        if not self.county:
            raise Bad(column, f"{column} {text}: county {parsed.county} is not registered here")
        if parsed.county != self.county:
            raise Bad(column, f"{column} {text} is of county {parsed.county}, not {self.county}")
        if parsed.level == "township":
            raise Bad(column, f"{column} {text} names village 000: land is contracted by a village")
        if parsed.township_code not in self.townships:
            raise Bad(column, f"{column} {text}: township {parsed.township_code} is not registered")
        return parsed.code

    def collective(self, number: int, row: dict[str, str], key: str) -> None:
        code = self.fbfbm(_required(row, "FBFBM"))
        if code in self.out.collectives:
            raise Bad("FBFBM", f"FBFBM {code} appears twice in FBF")
        name = _required(row, "FBFMC")
        _coded(row, "FZRZJLX", nyt2539.ID_TYPES, need=False)
        surveyed = _date(row, "FBFDCRQ")
        self.out.collectives[code] = CollectiveIn(code, name, surveyed, row, _sha(row))

    def household(self, number: int, row: dict[str, str], key: str) -> None:
        kind = _coded(row, "CBFLX", nyt2539.CONTRACTOR_KINDS, need=True)
        code = _required(row, "CBFBM")
        problem = nyt2539.check_cbfbm(code, kind)
        if problem:
            raise Bad("CBFBM", problem)
        self.fbfbm(code[:14], "CBFBM")
        if code[:14] not in self.out.collectives:
            raise Bad(
                "CBFBM", f"CBFBM {code}: its 发包方 {code[:14]} is not in FBF (or was rejected)"
            )
        if code in self.out.households:
            raise Bad("CBFBM", f"CBFBM {code} appears twice in CBF")
        name = _required(row, "CBFMC")
        id_type = _coded(row, "CBFZJLX", nyt2539.ID_TYPES, need=True)
        id_number = _required(row, "CBFZJHM")
        assert kind is not None and id_type is not None
        _date(row, "CBFDCRQ")
        self.out.households[code] = HouseholdIn(code, kind, name, id_type, id_number, row)

    def member(self, number: int, row: dict[str, str], key: str) -> None:
        household = self.out.households.get(key)
        if household is None:
            raise Bad("CBFBM", f"CBFBM {key!r} names no household of CBF (or one rejected)")
        household.members.append(
            MemberIn(
                _required(row, "CYXM"),
                _coded(row, "CYXB", nyt2539.SEXES, need=False),
                _coded(row, "CYZJLX", nyt2539.ID_TYPES, need=False),
                row.get("CYZJHM") or None,
                row.get("YHZGX") or None,
                _yes_no(row, "SFGYR"),
                row,
            )
        )

    def contract(self, number: int, row: dict[str, str], key: str) -> None:
        cbfbm = _required(row, "CBFBM")
        problem = nyt2539.check_contract_code(_required(row, "CBHTBM"), cbfbm, "CBHTBM")
        if problem:
            raise Bad("CBHTBM", problem)
        if cbfbm not in self.out.households:
            raise Bad("CBFBM", f"CBFBM {cbfbm} names no household of CBF (or one rejected)")
        if _required(row, "FBFBM") != cbfbm[:14]:
            raise Bad("FBFBM", f"FBFBM {row['FBFBM']} is not the 发包方 of CBFBM {cbfbm}")
        if key in self.out.contracts:
            raise Bad("CBHTBM", f"CBHTBM {key} appears twice in CBHT")
        method = _coded(row, "CBFS", nyt2539.ACQUIRED_BY, need=True)
        start, end = _date(row, "CBQXQ"), _date(row, "CBQXZ")
        if start and end and end <= start:
            raise Bad("CBQXZ", f"CBQXZ {end} is not after CBQXQ {start}")
        area = _number(row, "HTZMJ")
        count = _number(row, "CBDKZS")
        assert method is not None and area is not None and count is not None
        self.out.contracts[key] = ContractIn(
            key,
            cbfbm[:14],
            cbfbm,
            method,
            start,
            end,
            area,
            int(count),
            _date(row, "QDSJ"),
            {"CBHT": row},
        )

    def certificate(self, number: int, row: dict[str, str], key: str) -> None:
        contract = self.out.contracts.get(key)
        if contract is None:
            raise Bad("CBJYQZBM", f"CBJYQZBM {key!r} names no contract of CBHT (or one rejected)")
        _date(row, "FZRQ")
        _coded(row, "QZSFLQ", nyt2539.YES_NO, need=False)
        contract.certificate = key
        contract.record["CBJYQZ"] = row

    def link(self, number: int, row: dict[str, str], key: str, dk: dict[str, int]) -> None:
        if key not in dk:
            raise Bad("DKBM", f"DKBM {key!r} names no parcel of the DK layer (or one rejected)")
        cbfbm = _required(row, "CBFBM")
        if cbfbm not in self.out.households:
            raise Bad("CBFBM", f"CBFBM {cbfbm} names no household of CBF (or one rejected)")
        contract = self.out.contracts.get(row.get("CBHTBM", ""))
        if contract is None:
            raise Bad("CBHTBM", f"CBHTBM {row.get('CBHTBM')!r} names no contract of CBHT")
        if contract.cbfbm != cbfbm:
            raise Bad("CBFBM", f"CBFBM {cbfbm} is not the 承包方 of contract {contract.cbhtbm}")
        if row.get("FBFBM", key[:14]) != key[:14] or cbfbm[:14] != key[:14]:
            raise Bad("FBFBM", f"parcel {key}, its FBFBM and CBFBM {cbfbm} name different 发包方")
        acquired = _coded(row, "CBJYQQDFS", nyt2539.ACQUIRED_BY, need=True)
        area = _number(row, "HTMJ")
        assert acquired is not None and area is not None
        taken = self.out.parcels[key].cbfbm
        if taken is not None:
            raise Bad("DKBM", f"parcel {key} is already under 承包方 {taken} in CBDKXX")
        self.out.parcels[key].cbfbm = cbfbm
        contract.links.append(
            LinkIn(key, cbfbm, contract.cbhtbm, acquired, area, _yes_no(row, "SFQQQG"), row)
        )

    def parcel(self, feature: DkFeature) -> None:
        row = feature.record
        try:
            code = codes.parse_dkbm(_required(row, "DKBM")).code
        except codes.CodeError as error:
            raise Bad("DKBM", f"DKBM: {error}") from None
        fbfbm = self.fbfbm(code[:14], "DKBM")
        if fbfbm not in self.out.collectives:
            raise Bad("DKBM", f"DKBM {code}: its 发包方 {fbfbm} is not in FBF (or was rejected)")
        if code in self.out.parcels:
            raise Bad("DKBM", f"DKBM {code} is also row {self.out.parcels[code].row} of the layer")
        tdlylx = _required(row, "TDLYLX")
        land_use = nyt2539.land_use_of(tdlylx)
        if land_use is None:
            raise Bad("TDLYLX", f"TDLYLX {tdlylx!r} is no farm class of GB/T 21010")
        for column, table in (
            ("SYQXZ", nyt2539.OWNERSHIP),
            ("DKLB", nyt2539.PARCEL_KINDS),
            ("DLDJ", nyt2539.SOIL_GRADES),
            ("TDYT", nyt2539.LAND_PURPOSES),
            ("SFJBNT", nyt2539.YES_NO),
        ):
            _coded(row, column, table, need=False)
        area = _number(row, "SCMJ", need=False)
        if feature.wkb is None:
            raise Bad(None, "the feature has no geometry")
        self.out.parcels[code] = ParcelRecordIn(
            feature.row,
            code,
            fbfbm,
            land_use,
            row.get("DKMC") or None,
            area,
            row,
            feature.wkb,
            feature.source_sha256,
        )


def seal(contract: ContractIn) -> None:
    """Hash a contract with its CBJYQZ and CBDKXX rows (after links were dropped)."""
    contract.sha256 = _sha(contract.record, [link.record for link in contract.links])


def _cascade(checked: Checked) -> None:
    """Hash households with their members and contracts with their links."""
    for household in checked.households.values():
        household.sha256 = _sha(household.record, [m.record for m in household.members])
    for contract in checked.contracts.values():
        seal(contract)


def check_package(package: Package, *, county: str, townships: set[str]) -> Checked:
    """Every record of the package checked; ``county`` is the registry's GB/T 2260 county and
    ``townships`` its registered townships."""
    checker = _Checker(package, county, townships)
    missing = [name for name in nyt2539.REQUIRED_TABLES if name not in package.tables]
    for name in missing:
        checker.reject(name, 0, "", None, f"the package has no {name} table (.dbf, .csv or .mdb)")
    checker.each("FBF", "FBFBM", checker.collective)
    checker.each("CBF", "CBFBM", checker.household)
    checker.each("CBF_JTCY", "CBFBM", checker.member)
    for feature in package.features:
        try:
            checker.parcel(feature)
        except Bad as bad:
            checker.reject(
                "DK", feature.row, feature.record.get("DKBM", ""), bad.column, bad.reason
            )
    checker.each("CBHT", "CBHTBM", checker.contract)
    checker.each("CBJYQZ", "CBJYQZBM", checker.certificate)
    known = {code: p.row for code, p in checker.out.parcels.items()}
    checker.each("CBDKXX", "DKBM", lambda n, r, k: checker.link(n, r, k, known))
    _cascade(checker.out)
    return checker.out


def rejected_keys(rejections: Iterable[Rejection], table: str) -> set[str]:
    """Codes of a table's rejected records."""
    return {r.key for r in rejections if r.table == table}
