"""Bearer tokens: stored as hashes, refused when malformed, unknown or revoked."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.auth.models import ApiToken, Role
from digital_village.errors import Forbidden, Invalid, Unauthorized
from digital_village.tokens import service as tokens
from tests.api.test_app import assert_problem
from tests.conftest import World


def test_only_the_hash_of_a_token_is_stored(session: Session, world: World) -> None:
    issued = tokens.issue_token(session=session, role=Role.ADMIN, actor=Actor.operator())
    stored = session.scalar(select(ApiToken).where(ApiToken.public_id == issued.row.public_id))
    assert stored is not None
    secret = issued.token.split("_", 2)[2]
    assert secret not in stored.secret_hash
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    every_column = " ".join(str(getattr(stored, c.key)) for c in ApiToken.__table__.columns)
    assert issued.token not in every_column


def test_a_token_authenticates_as_its_role_and_scope(client: TestClient, world: World) -> None:
    me = client.get("/api/v1/me", headers=world.auth("manager")).json()
    assert me["role"] == "manager"
    assert me["cooperative_id"] == world.coop_a
    farmer = client.get("/api/v1/me", headers=world.auth("farmer")).json()
    assert farmer["household_id"] == world.household_a


@pytest.mark.parametrize(
    "header",
    [
        "Bearer dv_nothing",
        "Bearer dv_abcdef123456_notthesecret",
        "Bearer xx_abc_def",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
def test_bad_tokens_get_401_problem(client: TestClient, world: World, header: str) -> None:
    response = client.get("/api/v1/me", headers={"Authorization": header})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_wrong_secret_for_a_real_id_is_refused(client: TestClient, world: World) -> None:
    public_id = world.tokens["admin"].split("_")[1]
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer dv_{public_id}_guess"})
    assert_problem(response, 401, "invalid")


def test_revoked_token_stops_working_at_once(client: TestClient, world: World) -> None:
    public_id = world.tokens["farmer"].split("_")[1]
    assert client.get("/api/v1/me", headers=world.auth("farmer")).status_code == 200
    revoke = client.delete(f"/api/v1/tokens/{public_id}", headers=world.auth("admin"))
    assert revoke.status_code == 200
    assert revoke.json()["revoked_at"]
    assert_problem(client.get("/api/v1/me", headers=world.auth("farmer")), 401, "revoked")


def test_token_creation_over_the_api_shows_the_token_once(client: TestClient, world: World) -> None:
    created = client.post(
        "/api/v1/tokens",
        json={"role": "manager", "cooperative": str(world.coop_b)},
        headers=world.auth("admin"),
    )
    assert created.status_code == 201
    token = created.json()["token"]
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()[
            "cooperative_id"
        ]
        == world.coop_b
    )
    listed = client.get("/api/v1/tokens", headers=world.auth("admin")).json()
    assert all("token" not in row for row in listed)
    assert created.json()["public_id"] in {row["public_id"] for row in listed}


def test_scope_flags_must_match_the_role(session: Session, world: World) -> None:
    with pytest.raises(Invalid, match="needs --coop"):
        tokens.issue_token(session=session, role=Role.MANAGER, actor=Actor.operator())
    with pytest.raises(Invalid, match="takes no --household"):
        tokens.issue_token(
            session=session,
            role=Role.ADMIN,
            actor=Actor.operator(),
            household=str(world.household_a),
        )


def test_manager_may_issue_farmer_tokens_only_for_its_members(
    session: Session, world: World
) -> None:
    manager = auth.authenticate(session=session, token=world.tokens["manager"])
    issued = tokens.issue_token(
        session=session, role=Role.FARMER, actor=manager, household=str(world.household_a)
    )
    assert issued.row.household_id == world.household_a
    with pytest.raises(Forbidden):
        tokens.issue_token(
            session=session, role=Role.FARMER, actor=manager, household=str(world.household_b)
        )
    with pytest.raises(Forbidden):
        tokens.issue_token(
            session=session, role=Role.MANAGER, actor=manager, cooperative=str(world.coop_a)
        )


def test_authenticate_rejects_revoked_in_service(session: Session, world: World) -> None:
    public_id = world.tokens["device"].split("_")[1]
    auth.revoke_token(session=session, public_id=public_id, actor=Actor.operator())
    with pytest.raises(Unauthorized, match="revoked"):
        auth.authenticate(session=session, token=world.tokens["device"])
