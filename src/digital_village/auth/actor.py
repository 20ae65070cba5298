"""Who is acting, and the scope checks every service uses."""

from __future__ import annotations

from dataclasses import dataclass

from digital_village.auth.models import Role
from digital_village.errors import Forbidden


@dataclass(frozen=True)
class Actor:
    """The holder of a token (or the operator at the CLI) and what that token may touch."""

    role: Role
    cooperative_id: int | None = None
    household_id: int | None = None
    device_id: int | None = None
    token_public_id: str | None = None

    @classmethod
    def operator(cls) -> Actor:
        """The person at the server's command line: full rights, no token."""
        return cls(role=Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def _deny(self, what: str) -> Forbidden:
        return Forbidden(f"a {self.role.value} token may not {what}", role=self.role.value)

    def require_admin(self) -> None:
        """Only an admin."""
        if not self.is_admin:
            raise self._deny("do this; it needs the admin role")

    def require_role(self, *roles: Role) -> None:
        """Admin, or one of the given roles."""
        if not self.is_admin and self.role not in roles:
            names = ", ".join(role.value for role in (Role.ADMIN, *roles))
            raise self._deny(f"do this; it needs one of: {names}")

    def require_cooperative(self, cooperative_id: int | None) -> None:
        """Admin, or the manager of this cooperative."""
        if self.is_admin:
            return
        if self.role is Role.MANAGER and cooperative_id is not None:
            if self.cooperative_id == cooperative_id:
                return
            raise self._deny("act for another cooperative than the one it manages")
        raise self._deny("act for a cooperative; it needs a manager token of that cooperative")

    def require_household(self, household_id: int, cooperative_id: int | None) -> None:
        """Admin, the household itself, or the manager of the household's cooperative."""
        if self.is_admin:
            return
        if self.role is Role.FARMER and self.household_id == household_id:
            return
        if (
            self.role is Role.MANAGER
            and cooperative_id is not None
            and self.cooperative_id == cooperative_id
        ):
            return
        raise self._deny("act for a household other than its own or its cooperative's members")

    def require_device(self, device_id: int) -> None:
        """Admin, or this device's own token."""
        if self.is_admin or (self.role is Role.DEVICE and self.device_id == device_id):
            return
        raise self._deny(f"write for device {device_id}")
