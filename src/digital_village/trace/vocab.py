"""Vocabularies used by EPCIS events: CBV 2.0 bare words and the project's farming terms.

EPCIS 2.0 JSON writes standard CBV values as bare words ("commissioning", "in_progress");
the JSON-LD context expands them to ``https://ref.gs1.org/cbv/BizStep-commissioning`` and so on.
The word lists below are the enumerations of the official EPCIS 2.0 JSON Schema.

CBV 2.0 has no farming steps, so planting, spraying, harvesting, ... are business steps under
the project's own namespace :data:`DV_VOCAB`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

DV_VOCAB: Final = "https://w3id.org/digital-village/voc/"
"""Namespace of the project's own vocabulary; the JSON-LD prefix ``dv`` maps to it."""

DV_PREFIX: Final = "dv"
DV_BIZSTEP: Final = f"{DV_VOCAB}bizstep/"
EPCIS_CONTEXT_URL: Final = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


CBV_BIZSTEPS: Final = _words(
    """accepting arriving assembling collecting commissioning consigning
    creating_class_instance cycle_counting decommissioning departing destroying disassembling
    dispensing encoding entering_exiting holding inspecting installing killing loading other
    packing picking receiving removing repackaging repairing replacing reserving retail_selling
    shipping staging_outbound stock_taking stocking storing transporting unloading unpacking
    void_shipping sensor_reporting sampling"""
)
CBV_DISPOSITIONS: Final = _words(
    """active container_closed damaged destroyed dispensed disposed encoded expired in_progress
    in_transit inactive no_pedigree_match non_sellable_other partially_dispensed recalled reserved
    retail_sold returned sellable_accessible sellable_not_accessible stolen unknown available
    completeness_verified completeness_inferred conformant container_open mismatch_instance
    mismatch_class mismatch_quantity needs_replacement non_conformant unavailable"""
)
CBV_BIZ_TRANSACTION_TYPES: Final = _words(
    "bol cert desadv inv pedigree po poc prodorder recadv rma testprd testres upevt"
)
CBV_SOURCE_DEST_TYPES: Final = _words("owning_party possessing_party location")
CBV_ERROR_REASONS: Final = _words("did_not_occur incorrect_data")
CBV_SENSOR_ALERT_TYPES: Final = _words("ALARM_CONDITION ERROR_CONDITION")
CBV_COMPONENTS: Final = _words(
    """x y z axial_distance azimuth height spherical_radius polar_angle elevation_angle easting
    northing latitude longitude altitude"""
)
GS1_MEASUREMENT_TYPES: Final = _words(
    """AbsoluteHumidity AbsorbedDose AbsorbedDoseRate Acceleration Radioactivity Altitude
    AmountOfSubstance AmountOfSubstancePerUnitVolume Angle AngularAcceleration AngularMomentum
    AngularVelocity Area Capacitance Conductance Conductivity Count Density Dimensionless
    DoseEquivalent DoseEquivalentRate DynamicViscosity ElectricCharge ElectricCurrent
    ElectricCurrentDensity ElectricFieldStrength Energy Exposure Force Frequency Illuminance
    Inductance Irradiance KinematicViscosity Length LinearMomentum Luminance LuminousFlux
    LuminousIntensity MagneticFlux MagneticFluxDensity MagneticVectorPotential Mass
    MassConcentration MassFlowRate MassPerAreaTime MemoryCapacity MolalityOfSolute MolarEnergy
    MolarMass MolarVolume Power Pressure RadiantFlux RadiantIntensity RelativeHumidity Resistance
    Resistivity SolidAngle SpecificVolume Speed SurfaceDensity SurfaceTension Temperature Time
    Torque Voltage Volume VolumeFlowRate VolumeFraction VolumetricFlux Wavenumber"""
)

# The schema refuses CBV values written as URNs or under the retired ns.gs1.org host: in JSON
# they must be bare words.
CBV_URI_FORBIDDEN: Final = re.compile(r"^(urn:epcglobal:cbv|https?://ns\.gs1\.org/cbv/)")
# GS1 Web Vocabulary terms are written bare in JSON, never as gs1.org/voc URIs.
GS1_VOC_URI_FORBIDDEN: Final = re.compile(r"^https?://(www\.)?gs1\.org/voc/")

Action = Literal["ADD", "OBSERVE", "DELETE"]


class UnitCode(StrEnum):
    """UN/ECE Recommendation 20 unit codes used on the farm (the schema accepts any 2-3 code)."""

    KILOGRAM = "KGM"
    TONNE = "TNE"
    GRAM = "GRM"
    LITRE = "LTR"
    MILLILITRE = "MLT"
    CUBIC_METRE = "MTQ"
    HECTARE = "HAR"
    SQUARE_METRE = "MTK"
    PIECE = "H87"
    EACH = "EA"
    DEGREE_CELSIUS = "CEL"
    PERCENT = "P1"


@dataclass(frozen=True, slots=True)
class ExtensionField:
    """An extension key (compact ``dv:`` form) that a farming step requires, and its JSON type."""

    key: str
    kind: Literal["string", "integer", "quantity"]
    label_en: str
    label_zh: str


@dataclass(frozen=True, slots=True)
class FarmStep:
    """One farming business step of the project vocabulary."""

    key: str
    label_en: str
    label_zh: str
    event_type: str
    action: Action | None = None
    required_fields: tuple[ExtensionField, ...] = field(default=())

    @property
    def uri(self) -> str:
        """The bizStep URI written into events."""
        return f"{DV_BIZSTEP}{self.key}"


PESTICIDE_NAME = ExtensionField("dv:pesticideName", "string", "pesticide name", "农药名称")
DOSE = ExtensionField("dv:dose", "quantity", "dose with unit", "施用剂量")
PRE_HARVEST_INTERVAL = ExtensionField(
    "dv:preHarvestIntervalDays", "integer", "pre-harvest interval (days)", "安全间隔期（天）"
)

PLANTING = FarmStep("planting", "Planting", "播种/种植", "ObjectEvent", "OBSERVE")
FERTILIZING = FarmStep("fertilizing", "Fertilizing", "施肥", "ObjectEvent", "OBSERVE")
SPRAYING = FarmStep(
    "spraying",
    "Spraying crop protection",
    "施药",
    "ObjectEvent",
    "OBSERVE",
    (PESTICIDE_NAME, DOSE, PRE_HARVEST_INTERVAL),
)
IRRIGATING = FarmStep("irrigating", "Irrigating", "灌溉", "ObjectEvent", "OBSERVE")
# Harvest creates the lot: an ADD ObjectEvent that carries the lot's ILMD.
HARVESTING = FarmStep("harvesting", "Harvesting", "收获", "ObjectEvent", "ADD")
PRESSING = FarmStep("pressing", "Pressing", "压榨", "TransformationEvent")
MILLING = FarmStep("milling", "Milling", "碾磨", "TransformationEvent")

FARM_STEPS: Final[Mapping[str, FarmStep]] = MappingProxyType(
    {
        step.uri: step
        for step in (PLANTING, FERTILIZING, SPRAYING, IRRIGATING, HARVESTING, PRESSING, MILLING)
    }
)
"""Farming steps keyed by their bizStep URI."""


def farm_step(uri: str) -> FarmStep | None:
    """Return the catalogue entry of a project bizStep URI, or None for any other value."""
    return FARM_STEPS.get(uri)
