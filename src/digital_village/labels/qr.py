"""QR codes for labels and parcel signs (docs/DESIGN.md §7), as PNG and SVG bytes.

What goes into a code:

* product, lot and serial labels carry a GS1 Digital Link URI on the resolver host,
  ``{base}/01/<GTIN-14>[/10/<lot>][/21/<serial>]`` (built by ``gs1.digital_link.DigitalLink``);
* parcel signs carry ``{base}/p/<DKBM>``.

How it is printed: the symbol (``encode``) comes from ``qrcode``; rendering is done here, so
that a code printed at ``size_mm`` really is that size. The quiet zone is the 4 modules ISO/IEC
18004 asks for, and every module is a whole number of printer dots (PNG) or an exact fraction
of the requested size (SVG, which prints at any resolution). A code whose modules would come
out smaller than ``MIN_MODULE_MM`` is refused, naming the size it needs, rather than printed
unscannable.

Error correction, chosen for labels that live outdoors and in crates: see ``LABEL_ERROR_CORRECTION``
and ``SIGN_ERROR_CORRECTION``.

All functions are pure: no I/O, no settings; they return bytes.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import qrcode
import qrcode.constants
import qrcode.exceptions
import qrcode.util
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from digital_village.gs1.digital_link import DigitalLink
from digital_village.parcels.codes import parse_dkbm

__all__ = [
    "LABEL_ERROR_CORRECTION",
    "MIN_MODULE_MM",
    "QUIET_ZONE",
    "SIGN_ERROR_CORRECTION",
    "ErrorCorrection",
    "PrintLayout",
    "QRError",
    "Symbol",
    "encode",
    "label_png",
    "label_svg",
    "label_uri",
    "parcel_png",
    "parcel_svg",
    "parcel_uri",
    "png",
    "print_layout",
    "svg",
]

ErrorCorrection = Literal["L", "M", "Q", "H"]

# Level Q restores up to ~25 % of the codewords. A product label is handled, rubbed in crates and
# bottle racks and gets oil or soil on it: a scratch through the code or a smudge over a corner
# must not stop a phone from reading it, which rules out L (7 %) and M (15 %). H (30 %) would
# make a serial URI one version larger (37 -> 41 modules for a typical one), i.e. smaller
# modules on a 25 mm label, and small modules fail first when ink spreads or the print blurs; Q
# keeps them around 0.5 mm at that size while tolerating a quarter of the symbol being damaged.
LABEL_ERROR_CORRECTION: Final[ErrorCorrection] = "Q"
# A parcel sign stands in the field for a season or more: rain, mud splashes, sun-bleached ink,
# a bird dropping. It is printed larger (``parcel_png`` defaults to 60 mm) and its URI is
# short, so the larger symbol that H (30 %) needs costs nothing there.
SIGN_ERROR_CORRECTION: Final[ErrorCorrection] = "H"

QUIET_ZONE: Final = 4  # modules of white margin on every side, as ISO/IEC 18004 requires
# Smallest module we print: about what a phone camera resolves at a comfortable reading distance
# and what a 300 dpi thermal or laser printer still draws as a clean square (5 dots).
MIN_MODULE_MM: Final = 0.4
MM_PER_INCH: Final = 25.4

_LEVELS: Final = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}


class QRError(ValueError):
    """A code cannot be made or printed as asked; the message says why and what would work."""


@dataclass(frozen=True)
class Symbol:
    """An encoded QR symbol: dark (True) and light modules, without the quiet zone."""

    data: str
    version: int
    error_correction: ErrorCorrection
    modules: tuple[tuple[bool, ...], ...]

    @property
    def width(self) -> int:
        """Modules per side, without the quiet zone (21 for version 1, +4 per version)."""
        return len(self.modules)


@dataclass(frozen=True)
class PrintLayout:
    """How a symbol maps onto paper: modules per side (quiet zone included) and their size."""

    modules: int
    module_mm: float
    size_mm: float
    dots_per_module: int | None = None  # for raster output at a given dpi

    @property
    def size_px(self) -> int | None:
        """Image width and height in pixels, for raster output."""
        return None if self.dots_per_module is None else self.modules * self.dots_per_module


def encode(data: str, *, error_correction: ErrorCorrection = LABEL_ERROR_CORRECTION) -> Symbol:
    """Encode ``data`` into the smallest QR symbol that holds it at this error-correction level.

    The symbol is exactly what ``qrcode`` makes (``QRCode.make``), only faster: qrcode picks
    the mask by building all eight candidates and scoring them in pure Python (about 10 ms per
    code), which would make a sheet of a thousand labels take over ten seconds. Here qrcode
    builds one candidate, the other seven are derived from it with numpy and scored with the
    same ISO/IEC 18004 penalty rules, and qrcode then builds the symbol with the winning mask.
    The tests check symbol for symbol that the result equals qrcode's own.
    """
    if not data:
        raise QRError("nothing to encode: the data is empty")
    if error_correction not in _LEVELS:
        raise QRError(f"error correction must be one of L, M, Q, H, got {error_correction!r}")
    code = qrcode.QRCode(error_correction=_LEVELS[error_correction], border=0)
    code.add_data(data)
    try:
        code.best_fit()
    # Past version 40 qrcode raises DataOverflowError or, from its version setter, ValueError.
    except (qrcode.exceptions.DataOverflowError, ValueError):
        raise QRError(f"{len(data)} characters are too many for one QR code") from None
    # makeImpl(test=True, mask) is the candidate qrcode's own mask search scores: format and
    # version information left light.
    code.makeImpl(True, 0)
    best = _best_mask(np.array(code.modules, dtype=bool), code.version)
    code.makeImpl(False, best)
    modules = tuple(tuple(bool(dark) for dark in row) for row in code.get_matrix())
    return Symbol(
        data=data, version=code.version, error_correction=error_correction, modules=modules
    )


@functools.cache
def _function_modules(version: int) -> npt.NDArray[np.bool_]:
    """Modules that carry no data: finders, separators, timing, alignment, format/version info."""
    size = version * 4 + 17
    function = np.zeros((size, size), dtype=bool)
    # Finder patterns with their separators and the format information next to them (which
    # also covers the always-dark module at (size - 8, 8)).
    function[:9, :9] = True
    function[:9, size - 8 :] = True
    function[size - 8 :, :9] = True
    function[6, :] = function[:, 6] = True  # timing patterns
    centres = qrcode.util.pattern_position(version)
    for row in centres:
        for column in centres:
            # Alignment patterns are left out where they would overlap a finder pattern.
            if (row < 9 and (column < 9 or column >= size - 8)) or (row >= size - 8 and column < 9):
                continue
            function[row - 2 : row + 3, column - 2 : column + 3] = True
    if version >= 7:  # version information blocks
        function[:6, size - 11 : size - 8] = True
        function[size - 11 : size - 8, :6] = True
    return function


@functools.cache
def _mask_patterns(size: int) -> npt.NDArray[np.bool_]:
    """The eight ISO/IEC 18004 data masks (True where a module is inverted), shape (8, n, n)."""
    i, j = np.indices((size, size))
    return np.stack(
        [
            (i + j) % 2 == 0,
            i % 2 == 0,
            j % 3 == 0,
            (i + j) % 3 == 0,
            (i // 2 + j // 3) % 2 == 0,
            (i * j) % 2 + (i * j) % 3 == 0,
            ((i * j) % 2 + (i * j) % 3) % 2 == 0,
            ((i * j) % 3 + (i + j) % 2) % 2 == 0,
        ]
    )


# Penalty rule 3: a 1:1:3:1:1 finder-like run with four light modules on one side.
_FINDER_LIKE = np.array(
    [[1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1]], dtype=bool
)


def _best_mask(candidate: npt.NDArray[np.bool_], version: int) -> int:
    """The mask whose candidate symbol has the lowest penalty (the first one on a tie)."""
    size = candidate.shape[0]
    masks = _mask_patterns(size)
    data = ~_function_modules(version)
    # Undo mask 0 on the data modules and apply each mask instead: shape (8, n, n).
    candidates = np.where(data, candidate ^ masks[0] ^ masks, candidate)
    penalties = _penalties(candidates)
    return int(np.argmin(penalties))


def _run_penalty(lines: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Rule 1 for rows of (k, n, n): each run of 5 + m same-coloured modules costs 3 + m."""
    count, rows, width = lines.shape
    # A separator value (2) after every row keeps runs from joining across rows.
    padded = np.full((count, rows, width + 1), 2, dtype=np.int8)
    padded[:, :, :width] = lines
    flat = padded.reshape(-1)
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    lengths = np.diff(np.append(starts, flat.size))
    scored = (lengths >= 5) & (flat[starts] != 2)
    owner = starts[scored] // (rows * (width + 1))
    return np.bincount(owner, weights=lengths[scored] - 2, minlength=count).astype(np.int64)


def _penalties(symbols: npt.NDArray[np.bool_]) -> list[int]:
    """ISO/IEC 18004 mask penalty of each symbol in (k, n, n), as ``qrcode.util.lost_point``."""
    size = symbols.shape[1]
    rule1 = _run_penalty(symbols) + _run_penalty(symbols.transpose(0, 2, 1))
    top_left = symbols[:, :-1, :-1]
    blocks = (
        (top_left == symbols[:, 1:, :-1])
        & (top_left == symbols[:, :-1, 1:])
        & (top_left == symbols[:, 1:, 1:])
    )
    rule2 = 3 * blocks.sum(axis=(1, 2))
    rule3 = np.zeros(len(symbols), dtype=np.int64)
    for axis in (2, 1):
        windows = sliding_window_view(symbols, 11, axis=axis)
        for pattern in _FINDER_LIKE:
            rule3 += 40 * (windows == pattern).all(axis=-1).sum(axis=(1, 2))
    penalties = []
    for index, dark in enumerate(symbols.sum(axis=(1, 2)).tolist()):
        # Rule 4 in qrcode's own float arithmetic, so ties break the same way.
        rating = int(abs(float(dark) / size**2 * 100 - 50) / 5)
        penalties.append(int(rule1[index] + rule2[index] + rule3[index]) + rating * 10)
    return penalties


def print_layout(
    symbol: Symbol,
    *,
    size_mm: float,
    dpi: int | None = None,
    quiet_zone: int = QUIET_ZONE,
    min_module_mm: float = MIN_MODULE_MM,
) -> PrintLayout:
    """Fit a symbol into a square of ``size_mm`` (quiet zone included).

    With ``dpi`` (raster output) each module is a whole number of dots, so the code comes out at
    most ``size_mm`` wide; without it (vector output) exactly ``size_mm``. Raises QRError when
    the modules would be smaller than ``min_module_mm`` or than one dot.
    """
    if size_mm <= 0:
        raise QRError(f"print size must be positive, got {size_mm} mm")
    if quiet_zone < 0:
        raise QRError(f"quiet zone must be 0 or more modules, got {quiet_zone}")
    modules = symbol.width + 2 * quiet_zone
    module_mm = size_mm / modules
    dots: int | None = None
    if dpi is not None:
        if dpi <= 0:
            raise QRError(f"dpi must be positive, got {dpi}")
        dots = math.floor(module_mm / MM_PER_INCH * dpi)
        if dots < 1:
            raise QRError(
                f"at {dpi} dpi a {size_mm} mm code of {modules} modules has modules smaller "
                "than one dot: raise the dpi or the size"
            )
        module_mm = dots * MM_PER_INCH / dpi
    if module_mm < min_module_mm:
        needed = math.ceil(min_module_mm * modules * 10) / 10
        raise QRError(
            f"version {symbol.version} code ({modules} modules with the quiet zone) printed at "
            f"{size_mm} mm has {module_mm:.2f} mm modules, below the {min_module_mm} mm minimum: "
            f"print it at least {needed} mm wide, or shorten the data (base URL, lot, serial)"
        )
    return PrintLayout(
        modules=modules,
        module_mm=module_mm,
        size_mm=module_mm * modules,
        dots_per_module=dots,
    )


def png(
    data: str | Symbol,
    *,
    size_mm: float = 25.0,
    dpi: int = 300,
    quiet_zone: int = QUIET_ZONE,
    error_correction: ErrorCorrection = LABEL_ERROR_CORRECTION,
    min_module_mm: float = MIN_MODULE_MM,
) -> bytes:
    """Return a 1-bit PNG of the code, ``size_mm`` wide (or a little less) at ``dpi``.

    The PNG records its resolution (pHYs), so print dialogs size it right by themselves.
    ``error_correction`` applies only when ``data`` is a string.
    """
    symbol = data if isinstance(data, Symbol) else encode(data, error_correction=error_correction)
    layout = print_layout(
        symbol, size_mm=size_mm, dpi=dpi, quiet_zone=quiet_zone, min_module_mm=min_module_mm
    )
    assert layout.dots_per_module is not None  # dpi was given
    # One byte per module (0 dark, 255 light) on the quiet-zone canvas, then scaled by whole
    # dots with nearest-neighbour, so edges stay sharp.
    canvas = bytearray(b"\xff" * layout.modules * layout.modules)
    for y, row in enumerate(symbol.modules, start=quiet_zone):
        offset = y * layout.modules + quiet_zone
        for x, dark in enumerate(row):
            if dark:
                canvas[offset + x] = 0
    image = Image.frombytes("L", (layout.modules, layout.modules), bytes(canvas))
    scaled = image.resize((layout.size_px or 0,) * 2, Image.Resampling.NEAREST).convert("1")
    out = io.BytesIO()
    scaled.save(out, format="PNG", dpi=(dpi, dpi), optimize=True)
    return out.getvalue()


def svg(
    data: str | Symbol,
    *,
    size_mm: float = 25.0,
    quiet_zone: int = QUIET_ZONE,
    error_correction: ErrorCorrection = LABEL_ERROR_CORRECTION,
    min_module_mm: float = MIN_MODULE_MM,
) -> bytes:
    """Return a standalone SVG of the code, exactly ``size_mm`` wide, one path for the modules.

    The drawing is in module units (``viewBox``), so it scales without rounding; dark modules
    are merged into horizontal runs to keep the file small.
    """
    symbol = data if isinstance(data, Symbol) else encode(data, error_correction=error_correction)
    layout = print_layout(
        symbol, size_mm=size_mm, quiet_zone=quiet_zone, min_module_mm=min_module_mm
    )
    runs = []
    for y, row in enumerate(symbol.modules):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            runs.append(f"M{start + quiet_zone} {y + quiet_zone}h{x - start}v1h-{x - start}z")
    side = layout.modules
    size = f"{layout.size_mm:.3f}".rstrip("0").rstrip(".")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}mm" height="{size}mm" '
        f'viewBox="0 0 {side} {side}" shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>\n'
    ).encode()


def label_uri(base_url: str, gtin: str, lot: str | None = None, serial: str | None = None) -> str:
    """The Digital Link URI a product (GTIN), lot or serial label carries."""
    return DigitalLink(gtin=gtin, lot=lot, serial=serial).uri(base_url)


def parcel_uri(base_url: str, dkbm: str) -> str:
    """The URI a parcel sign carries: ``{base}/p/<19-digit DKBM>`` (the DKBM is validated)."""
    parts = urlsplit(base_url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise QRError(f"base URL must be http(s)://host[/prefix], got {base_url!r}")
    if parts.query or parts.fragment:
        raise QRError(f"base URL must not have a query or fragment: {base_url!r}")
    base = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"
    return f"{base}/p/{parse_dkbm(dkbm).code}"


def label_png(
    base_url: str,
    gtin: str,
    lot: str | None = None,
    serial: str | None = None,
    *,
    size_mm: float = 25.0,
    dpi: int = 300,
) -> bytes:
    """PNG QR code for a product, lot or serial label (error correction Q)."""
    return png(label_uri(base_url, gtin, lot, serial), size_mm=size_mm, dpi=dpi)


def label_svg(
    base_url: str,
    gtin: str,
    lot: str | None = None,
    serial: str | None = None,
    *,
    size_mm: float = 25.0,
) -> bytes:
    """SVG QR code for a product, lot or serial label (error correction Q)."""
    return svg(label_uri(base_url, gtin, lot, serial), size_mm=size_mm)


def parcel_png(base_url: str, dkbm: str, *, size_mm: float = 60.0, dpi: int = 300) -> bytes:
    """PNG QR code for a parcel sign (error correction H)."""
    uri = parcel_uri(base_url, dkbm)
    return png(uri, size_mm=size_mm, dpi=dpi, error_correction=SIGN_ERROR_CORRECTION)


def parcel_svg(base_url: str, dkbm: str, *, size_mm: float = 60.0) -> bytes:
    """SVG QR code for a parcel sign (error correction H)."""
    uri = parcel_uri(base_url, dkbm)
    return svg(uri, size_mm=size_mm, error_correction=SIGN_ERROR_CORRECTION)
