"""Every route of the web capability, for ``create_app`` to include in one line."""

from __future__ import annotations

from fastapi import APIRouter

from digital_village.web import farmer, labels, landing, manage, resolver

router = APIRouter()
router.include_router(labels.router)
router.include_router(labels.page_router)
router.include_router(resolver.router)
router.include_router(farmer.router)
router.include_router(landing.router)
router.include_router(manage.router)
