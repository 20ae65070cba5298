"""The cooperative managers' console: ``/manage`` (docs/DESIGN.md §1, the web layer).

A manager registers products, harvests, processing and packing, issues 承诺达标合格证 and prints
label sheets from a phone or a PC, in zh-CN or English (the site's language switch). Sign-in is
the label page's: the manager's token is kept in the browser (``static/signin.js``) and sent as a
bearer header by the console's script (``static/manage.js``), so:

* ``GET /manage`` and ``GET /manage/{section}`` are the same public frame (no data in it);
* ``GET /manage/panel/{section}`` is a section's panel (HTML) for the signed-in manager; given the
  form's fields as its query, it also shows the checks a save would make (a parcel not held that
  day, an implausible yield, the mass balance) without storing anything;
* ``POST /manage/<action>`` takes a form's fields as JSON, stores through the same services as
  the API (events through ``trace.capture``, products and certificates through
  ``trace.products``) and answers with the panel again: the ledger index of what was recorded,
  or each mistake next to its field (422) and nothing stored.

Only a manager token opens the panels, and only for its own cooperative's data; an admin works
through the API and the CLI, a farmer through the parcel pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final, Literal, get_args

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from digital_village.api.deps import JSON_BODY, SessionDep, SettingsDep
from digital_village.auth.actor import Actor
from digital_village.auth.dependencies import ActorDep
from digital_village.auth.models import Role
from digital_village.config import Settings
from digital_village.errors import Conflict, Forbidden, Invalid, NotFound
from digital_village.ledger.dependencies import LedgerDep
from digital_village.ledger.log import Ledger
from digital_village.regions import service as regions
from digital_village.web import (
    i18n,
    manage_people,
    manage_products,
    manage_season,
    manage_stock,
    pages,
)
from digital_village.web.manage_context import Console
from digital_village.web.manage_forms import Done, Form, Mistakes
from digital_village.web.manage_words import words

router = APIRouter(tags=["manage"])

Section = Literal[
    "products", "harvest", "processing", "packing", "certificates", "members", "devices"
]
SECTIONS: Final[tuple[str, ...]] = get_args(Section)
View = Callable[[Console, Form, Mistakes, bool], dict[str, Any]]
Save = Callable[[Console, Ledger, Form, Mistakes], Done | None]
VIEWS: Final[dict[str, View]] = {
    "products": manage_products.view,
    "harvest": manage_season.harvest_view,
    "processing": manage_season.processing_view,
    "packing": manage_stock.packing_view,
    "certificates": manage_stock.certificates_view,
    "members": manage_people.members_view,
    "devices": manage_people.devices_view,
}
PANEL: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "The section's panel", "content": {"text/html": {}}},
    422: {"description": "The panel, each mistake next to its field", "content": {"text/html": {}}},
}
FormBody = Annotated[
    dict[str, Any], Body(description="the form's fields: name → value, or a list of values")
]
NO_STORE: Final = {"Cache-Control": "no-store"}


def console_manager(request: Request, actor: ActorDep) -> Actor:
    """The signed-in manager of one cooperative; anyone else is refused (403)."""
    if actor.role is not Role.MANAGER or actor.cooperative_id is None:
        raise Forbidden(words(pages.language_of(request))["forbidden"])
    return actor


ManagerDep = Annotated[Actor, Depends(console_manager)]


def _frame(request: Request, section: str) -> Response:
    language = pages.language_of(request)
    m = words(language)
    messages = {
        "failed": m["failed"],
        "sending": i18n.messages(language)["form_sending"],
        "making": m["loading"],
        "made": m["labels_done"],
        "gtinOk": m["gtin_check_ok"],
        "gtinWrong": m["gtin_check_wrong"],
    }
    return pages.page(
        request,
        "manage/shell.html",
        language=language,
        headers={"Cache-Control": "no-cache"},
        m=m,
        section=section,
        sections=SECTIONS,
        messages=messages,
    )


@router.get("/manage", response_class=Response, responses={200: PANEL[200]})
def console_home(request: Request) -> Response:
    """The console's frame, opening at the products (sign-in happens in the page)."""
    return _frame(request, "products")


@router.get("/manage/{section}", response_class=Response, responses={200: PANEL[200]})
def console_section(section: str, request: Request) -> Response:
    """The console's frame for one section (a mistyped section is a page saying so)."""
    if section not in SECTIONS:
        language = pages.language_of(request)
        return pages.error(
            request, 404, f"no section {section!r} in the console", language=language
        )
    return _frame(request, section)


def _console(request: Request, session: Session, actor: Actor, settings: Settings) -> Console:
    assert actor.cooperative_id is not None  # console_manager
    return Console(
        session=session,
        actor=actor,
        cooperative=regions.get_cooperative(session=session, cooperative_id=actor.cooperative_id),
        language=pages.language_of(request),
        settings=settings,
    )


def _panel(
    request: Request,
    console: Console,
    section: str,
    form: Form,
    mistakes: Mistakes,
    *,
    check: bool,
    done: Done | None = None,
) -> Response:
    context = VIEWS[section](console, form, mistakes, check)
    body = pages.render(
        f"manage/{section}.html",
        t=i18n.messages(console.language),
        m=words(console.language),
        lang=console.language,
        cooperative=console.cooperative,
        form=form.values(),
        mistakes=mistakes.by_field,
        done=done,
        posted=not check and bool(mistakes),
        **context,
    ).encode()
    status = 422 if mistakes and not check else 200
    headers = {**NO_STORE, "Content-Language": console.language}
    return pages.compressed(request, body, status=status, headers=headers)


@router.get("/manage/panel/{section}", response_class=Response, responses=PANEL)
def console_panel(
    section: Section,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: ManagerDep,
) -> Response:
    """A section's panel; with the form's fields as the query, the checks a save would make."""
    console = _console(request, session, actor, settings)
    fields = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    mistakes = Mistakes(console.language)
    return _panel(request, console, section, Form(fields), mistakes, check=bool(fields))


def _save(
    request: Request,
    section: str,
    save: Save,
    body: dict[str, Any],
    session: Session,
    ledger: Ledger,
    settings: Settings,
    actor: Actor,
) -> Response:
    console = _console(request, session, actor, settings)
    form = Form(body)
    mistakes = Mistakes(console.language)
    done: Done | None = None
    try:
        done = save(console, ledger, form, mistakes)
    except (Invalid, Conflict, NotFound) as error:
        # A rule the console's own checks did not foresee: shown as the service words it.
        field = str(error.extra.get("field") or "form")
        mistakes.by_field.setdefault(field, error.detail)
    if mistakes:
        session.rollback()
        return _panel(request, console, section, form, mistakes, check=False)
    return _panel(request, console, section, Form(), mistakes, check=False, done=done)


def _saver(path: str, section: str, save: Save, summary: str) -> None:
    """A POST route storing one form of a section through ``save``."""

    def route(
        request: Request,
        body: FormBody,
        session: SessionDep,
        settings: SettingsDep,
        ledger: LedgerDep,
        actor: ManagerDep,
    ) -> Response:
        return _save(request, section, save, body, session, ledger, settings, actor)

    route.__name__ = (
        f"console_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"
    )
    route.__doc__ = summary
    router.post(
        path, response_class=Response, responses=PANEL, dependencies=JSON_BODY, summary=summary
    )(route)


_saver("/manage/products", "products", manage_products.register, "Register a product")
_saver(
    "/manage/products/edit",
    "products",
    manage_products.edit,
    "Change a product's name, net content or category (on the ledger)",
)
_saver(
    "/manage/products/ranges",
    "products",
    manage_products.edit_ranges,
    "Change a product's plausible ranges",
)
_saver("/manage/harvest", "harvest", manage_season.harvest, "Record a harvest")
_saver("/manage/processing", "processing", manage_season.process, "Record processing")
_saver("/manage/packing", "packing", manage_stock.pack, "Record packing")
_saver("/manage/certificates", "certificates", manage_stock.certify, "Issue a 承诺达标合格证")
_saver("/manage/invitations", "members", manage_people.invite, "Invite a member to sign in")
