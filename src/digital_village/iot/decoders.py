"""LoRaWAN uplink decoders for soil sensors, looked up by device model name.

A decoder turns one frame (FPort and FRMPayload bytes) into measurements named and scaled
as in :mod:`digital_village.iot.metrics`. Network servers can run vendor JavaScript codecs
themselves, but ingest must also cope with frames that arrive undecoded (ChirpStack
``data``, TTS ``frm_payload``), and a Python decoder is testable against the vendors'
published examples.

Every failure is a ``DecodeError``: a frame that is short, too long, or names channels or
sensors the model does not have is refused whole, because a misaligned parse yields
plausible-looking wrong numbers, which are worse than no numbers.

Pure and stdlib-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

__all__ = [
    "REGISTRY",
    "DecodeError",
    "Decoder",
    "DecoderRegistry",
    "Measurement",
    "Payload",
    "UnknownModelError",
    "decode",
    "decode_decentlab_dl_5tm",
    "decode_dragino_lse01",
    "decode_milesight_em500_smtc",
    "known_models",
]


class DecodeError(ValueError):
    """A frame that cannot be decoded: short, garbled, wrong port, or an unknown model."""


class UnknownModelError(DecodeError):
    """No decoder is registered for this model; the message lists the known models."""

    def __init__(self, model: str, known: tuple[str, ...]) -> None:
        self.model = model
        self.known = known
        super().__init__(f"no decoder for device model {model!r}; known models: {', '.join(known)}")


class Measurement(NamedTuple):
    """One decoded value, in the catalogue metric's unit."""

    metric: str
    value: float


Payload = bytes | bytearray | memoryview
"""An uplink's FRMPayload; decoders themselves always receive ``bytes``."""

Decoder = Callable[[int, bytes], list[Measurement]]
"""A model's decoder: ``(fport, payload) -> measurements``; raises ``DecodeError``."""

# LoRaWAN reserves FPort 0 for MAC commands and 224 for the conformance test protocol;
# only 1..223 carry application payloads.
_FPORT_MIN = 1
_FPORT_MAX = 223


class DecoderRegistry:
    """Decoders by model name; names match case-insensitively, as device profiles vary."""

    def __init__(self) -> None:
        self._decoders: dict[str, tuple[str, Decoder]] = {}

    def register(self, model: str, decoder: Decoder) -> None:
        """Register ``decoder`` under ``model``; a second decoder for the same name is an error."""
        key = _model_key(model)
        if not key:
            raise ValueError("a device model name must not be blank")
        if key in self._decoders:
            raise ValueError(f"a decoder for {self._decoders[key][0]!r} is already registered")
        self._decoders[key] = (model.strip(), decoder)

    def models(self) -> tuple[str, ...]:
        """Return the registered model names as registered, sorted."""
        return tuple(sorted(name for name, _ in self._decoders.values()))

    def decode(self, model: str, fport: int, payload: Payload) -> list[Measurement]:
        """Decode one uplink of ``model``; raise ``DecodeError`` if it cannot be decoded."""
        entry = self._decoders.get(_model_key(model))
        if entry is None:
            raise UnknownModelError(model, self.models())
        name, decoder = entry
        if not _FPORT_MIN <= fport <= _FPORT_MAX:
            raise DecodeError(f"{name}: FPort {fport} carries no application payload")
        # bytes(11) would silently make eleven zero bytes out of a misplaced length.
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        if not payload:
            raise DecodeError(f"{name}: empty payload")
        return decoder(fport, bytes(payload))


def _model_key(model: str) -> str:
    return model.strip().casefold()


def _u16be(payload: bytes, offset: int) -> int:
    return int.from_bytes(payload[offset : offset + 2], "big")


def _i16be(payload: bytes, offset: int) -> int:
    return int.from_bytes(payload[offset : offset + 2], "big", signed=True)


def _u16le(payload: bytes, offset: int) -> int:
    return int.from_bytes(payload[offset : offset + 2], "little")


def _i16le(payload: bytes, offset: int) -> int:
    return int.from_bytes(payload[offset : offset + 2], "little", signed=True)


# --- Decentlab protocol v2 ---------------------------------------------------------------
#
# Frame: version (1 byte, = 2) | device id (u16 BE) | sensor flags (u16 BE) | words (u16 BE).
# Flag bit i set means sensor i of the model is present and contributes its fixed number of
# words, in flag order. The vendor's decoders do not check the length; we do, since a
# missing or extra word shifts every later value.

_DECENTLAB_VERSION = 2
_DECENTLAB_HEADER = 5


def _decentlab_v2(
    model: str, payload: bytes, word_counts: tuple[int, ...]
) -> Iterator[tuple[int, list[int]]]:
    """Yield (sensor index, its words) for each sensor flagged in a Decentlab v2 frame."""
    if len(payload) < _DECENTLAB_HEADER:
        raise DecodeError(
            f"{model}: {len(payload)} bytes is shorter than the {_DECENTLAB_HEADER}-byte header"
        )
    if payload[0] != _DECENTLAB_VERSION:
        raise DecodeError(f"{model}: protocol version {payload[0]}, expected {_DECENTLAB_VERSION}")
    flags = _u16be(payload, 3)
    if flags >> len(word_counts):
        raise DecodeError(f"{model}: sensor flags 0x{flags:04x} name sensors this model lacks")
    present = [index for index in range(len(word_counts)) if flags >> index & 1]
    expected = _DECENTLAB_HEADER + 2 * sum(word_counts[index] for index in present)
    if len(payload) != expected:
        raise DecodeError(
            f"{model}: {len(payload)} bytes, but flags 0x{flags:04x} announce {expected}"
        )
    offset = _DECENTLAB_HEADER
    for index in present:
        words = [_u16be(payload, offset + 2 * n) for n in range(word_counts[index])]
        offset += 2 * word_counts[index]
        yield index, words


def _topp_vwc_percent(permittivity: float) -> float:
    # Topp et al. (1980) mineral-soil calibration, the conversion Decentlab documents for the
    # 5TM; it yields m³/m³, and the catalogue wants percent.
    eps = permittivity
    return 100.0 * (4.3e-6 * eps**3 - 5.5e-4 * eps**2 + 2.92e-2 * eps - 5.3e-2)


def decode_decentlab_dl_5tm(fport: int, payload: bytes) -> list[Measurement]:
    """Decode a Decentlab DL-5TM (METER 5TM: soil moisture and temperature) uplink.

    Sensor 0 (two words): raw permittivity (ε = raw / 50, converted to volumetric water
    content with the Topp equation) and soil temperature ((raw − 400) / 10 °C).
    Sensor 1 (one word): battery in mV. The 5TM measures no conductivity.
    """
    measurements: list[Measurement] = []
    for sensor, words in _decentlab_v2("DL-5TM", payload, (2, 1)):
        if sensor == 0:
            measurements.append(Measurement("soil_moisture", _topp_vwc_percent(words[0] / 50)))
            measurements.append(Measurement("soil_temperature", (words[1] - 400) / 10))
        else:
            measurements.append(Measurement("battery", words[0] / 1000))
    return measurements


# --- Milesight EM500-SMTC ------------------------------------------------------------------
#
# A sequence of (channel id, channel type, value) records, little-endian. The value length
# follows from (id, type); an unknown pair makes the rest of the frame unreadable.

_MILESIGHT_FAILED = 0xFFFF  # "collection failed"
_MILESIGHT_OUT_OF_RANGE = 0xFFFD  # "out of range"
_MILESIGHT_SENTINELS = (_MILESIGHT_FAILED, _MILESIGHT_OUT_OF_RANGE)

# Records that carry nothing for the catalogue but must be stepped over: device
# information (sent after join), battery in percent (the catalogue's battery is volts), and
# history records (10 bytes: time u32, EC, temperature, moisture), which would need their
# own timestamps to become readings.
_MILESIGHT_SKIPPED: dict[tuple[int, int], int] = {
    (0xFF, 0x01): 1,  # IPSO version
    (0xFF, 0x09): 2,  # hardware version
    (0xFF, 0x0A): 2,  # firmware version
    (0xFF, 0xFF): 2,  # TSL version
    (0xFF, 0x16): 8,  # serial number
    (0xFF, 0x0F): 1,  # LoRaWAN class
    (0xFF, 0xFE): 1,  # reset event
    (0xFF, 0x0B): 1,  # device status
    (0x01, 0x75): 1,  # battery, %
    (0x20, 0xCE): 10,  # history record
}

_MILESIGHT_TEMPERATURE = (0x03, 0x67)  # i16 LE, 0.1 °C
_MILESIGHT_MOISTURE_HALF = (0x04, 0x68)  # u8, 0.5 %
_MILESIGHT_MOISTURE = (0x04, 0xCA)  # u16 LE, 0.01 %
_MILESIGHT_EC = (0x05, 0x7F)  # u16 LE, µS/cm
_MILESIGHT_TEMPERATURE_ALARM = (0x83, 0xD7)  # i16 LE 0.1 °C, i16 change, u8 alarm type

_MILESIGHT_LENGTHS: dict[tuple[int, int], int] = {
    **_MILESIGHT_SKIPPED,
    _MILESIGHT_TEMPERATURE: 2,
    _MILESIGHT_MOISTURE_HALF: 1,
    _MILESIGHT_MOISTURE: 2,
    _MILESIGHT_EC: 2,
    _MILESIGHT_TEMPERATURE_ALARM: 5,
}


def decode_milesight_em500_smtc(fport: int, payload: bytes) -> list[Measurement]:
    """Decode a Milesight EM500-SMTC (soil moisture, temperature, EC) uplink.

    The vendor decoder ignores the FPort (the device reports on 85), so this does too.
    Values the device marks as failed or out of range (0xFFFF, 0xFFFD) are left out.
    """
    measurements: list[Measurement] = []
    offset = 0
    while offset < len(payload):
        if offset + 2 > len(payload):
            raise DecodeError(f"EM500-SMTC: frame ends inside a record header at byte {offset}")
        channel = (payload[offset], payload[offset + 1])
        length = _MILESIGHT_LENGTHS.get(channel)
        if length is None:
            raise DecodeError(
                f"EM500-SMTC: unknown channel 0x{channel[0]:02x} type 0x{channel[1]:02x} "
                f"at byte {offset}"
            )
        start = offset + 2
        offset = start + length
        if offset > len(payload):
            raise DecodeError(
                f"EM500-SMTC: record 0x{channel[0]:02x} 0x{channel[1]:02x} needs {length} "
                f"bytes, frame has {len(payload) - start}"
            )
        measurements.extend(_milesight_record(channel, payload, start))
    return measurements


def _milesight_record(channel: tuple[int, int], payload: bytes, start: int) -> list[Measurement]:
    if channel in (_MILESIGHT_TEMPERATURE, _MILESIGHT_TEMPERATURE_ALARM):
        # The sentinels are compared unsigned: the vendor gives up -0.1 °C and -0.3 °C to
        # mark probe faults, and a fault must not become a sub-zero reading.
        if _u16le(payload, start) in _MILESIGHT_SENTINELS:
            return []
        return [Measurement("soil_temperature", _i16le(payload, start) / 10)]
    if channel == _MILESIGHT_MOISTURE_HALF:
        return [Measurement("soil_moisture", payload[start] / 2)]
    if channel == _MILESIGHT_MOISTURE:
        raw = _u16le(payload, start)
        return [] if raw in _MILESIGHT_SENTINELS else [Measurement("soil_moisture", raw / 100)]
    if channel == _MILESIGHT_EC:
        raw = _u16le(payload, start)
        return [] if raw in _MILESIGHT_SENTINELS else [Measurement("soil_ec", raw / 1000)]
    return []


# --- Dragino LSE01 -------------------------------------------------------------------------
#
# 11 bytes on FPort 2, big-endian: battery (u16, low 14 bits mV) | external DS18B20 probe
# (i16, 0.1 °C) | soil moisture (u16, 0.01 %) | soil temperature (i16, 0.01 °C) |
# conductivity (u16, µS/cm) | flags (bit 7 MOD, bit 4 sensor flag, bits 0-3 interrupt).

_DRAGINO_LSE01_FPORT = 2
_DRAGINO_LSE01_LENGTH = 11
_DRAGINO_LSE01_RAW_MODE = 0x80


def decode_dragino_lse01(fport: int, payload: bytes) -> list[Measurement]:
    """Decode a Dragino LSE01 (soil moisture, temperature, conductivity) uplink.

    Follows the vendor's decoder for firmware v1.2 and later: with the MOD bit of byte 10
    set (``AT+MOD=1``) bytes 4-9 hold uncalibrated probe counts, which are no catalogue
    metric, so only the battery is reported. The optional DS18B20 probe is left out: where
    it hangs is unknown (soil? air?) and without one the field holds junk.
    """
    if fport != _DRAGINO_LSE01_FPORT:
        raise DecodeError(
            f"LSE01: FPort {fport} carries no sensor readings (expected {_DRAGINO_LSE01_FPORT})"
        )
    if len(payload) != _DRAGINO_LSE01_LENGTH:
        raise DecodeError(f"LSE01: {len(payload)} bytes, expected {_DRAGINO_LSE01_LENGTH}")
    battery = Measurement("battery", (_u16be(payload, 0) & 0x3FFF) / 1000)
    if payload[10] & _DRAGINO_LSE01_RAW_MODE:
        return [battery]
    return [
        battery,
        Measurement("soil_moisture", _u16be(payload, 4) / 100),
        # Two's complement; the vendor's manual subtracts 0xFFFF instead, 0.01 °C off.
        Measurement("soil_temperature", _i16be(payload, 6) / 100),
        Measurement("soil_ec", _u16be(payload, 8) / 1000),
    ]


REGISTRY = DecoderRegistry()
"""The project's decoders. Model names are the vendors' own."""

REGISTRY.register("DL-5TM", decode_decentlab_dl_5tm)
REGISTRY.register("EM500-SMTC", decode_milesight_em500_smtc)
REGISTRY.register("LSE01", decode_dragino_lse01)


def decode(model: str, fport: int, payload: Payload) -> list[Measurement]:
    """Decode one uplink of ``model`` with the project's registry; raise ``DecodeError``."""
    return REGISTRY.decode(model, fport, payload)


def known_models() -> tuple[str, ...]:
    """Return the device models the project's registry can decode, sorted."""
    return REGISTRY.models()
