"""Who may see what in the Returns views: Airflow's auth manager decides, per merchant DAG.

The views run inside the Airflow API server, so the caller is whoever Airflow's UI logged in:
the JWT in the `_token` cookie (or an `Authorization: Bearer` header from a script), resolved by
Airflow's own `get_user` dependency. No token, or an expired one: 401 and no data.

Access follows `requires_access_dag` semantics, through the configured auth manager, so a
deployment with per-DAG permissions enforces them here too:

* a merchant's returns (search hits, timelines, queues, trend) are visible to a user who may
  read (`GET`) *every one* of that merchant's three DAGs. Decision: a user who lacks access to
  any of a merchant's DAGs sees none of its returns; granting a merchant means granting its
  DAGs, never the other way round.
* a DAG run's tab needs read access to that DAG's runs (`DagAccessEntity.RUN`), exactly what
  Airflow's own run pages ask for.

Merchants come from `include.returns_sync.merchants` (issue 13): without a merchants file the
only merchant is `default`, with today's DAG ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from include.returns_sync.merchants import DAG_ID_SEPARATOR

DEFAULT_MERCHANT = "default"
# Today's DAG ids; a merchant other than "default" gets `<base>__<merchant id>`.
DAG_BASES = ("loop_returns_to_whiplash", "whiplash_receipts_to_loop", "loop_asn_backfill")


def merchant_dag_ids(merchant_id: str) -> tuple[str, ...]:
    """The three DAG ids of one merchant (today's ids for `default`)."""
    if merchant_id == DEFAULT_MERCHANT:
        return DAG_BASES
    return tuple(f"{base}{DAG_ID_SEPARATOR}{merchant_id}" for base in DAG_BASES)


def merchant_of_dag(dag_id: str) -> str | None:
    """The merchant whose DAG this is, or None when the DAG is not one of ours."""
    if dag_id in DAG_BASES:
        return DEFAULT_MERCHANT
    for base in DAG_BASES:
        prefix = f"{base}{DAG_ID_SEPARATOR}"
        if dag_id.startswith(prefix) and len(dag_id) > len(prefix):
            return dag_id[len(prefix) :]
    return None


def configured_merchant_ids() -> list[str]:
    """Every configured merchant id, in file order; `["default"]` without a merchants file."""
    from include.returns_sync.merchants import configured_merchants

    return [m.id for m in configured_merchants()]


@dataclass(frozen=True)
class Viewer:
    """The logged-in user and the merchants whose returns they may see."""

    user: Any  # Airflow's BaseUser
    merchants: tuple[str, ...]
    all_merchants: bool  # may see every configured merchant ("All merchants" filters allowed)

    def may_see(self, merchant_id: str) -> bool:
        return merchant_id in self.merchants


class Authorizer:
    """Asks Airflow's auth manager about our DAGs; one instance per app."""

    def __init__(self, merchant_ids: Any = configured_merchant_ids) -> None:
        self._merchant_ids = merchant_ids

    @staticmethod
    def _manager() -> Any:
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager()

    def viewer(self, user: Any) -> Viewer:
        """The merchants `user` may read every DAG of."""
        merchants: Sequence[str] = self._merchant_ids()
        wanted = {dag_id for m in merchants for dag_id in merchant_dag_ids(m)}
        allowed = self._manager().filter_authorized_dag_ids(dag_ids=wanted, user=user, method="GET")
        visible = tuple(m for m in merchants if set(merchant_dag_ids(m)) <= allowed)
        return Viewer(user=user, merchants=visible, all_merchants=len(visible) == len(merchants))

    def may_read_runs(self, user: Any, dag_id: str) -> bool:
        """`requires_access_dag("GET", DagAccessEntity.RUN)` for one DAG, as a yes/no."""
        from airflow.api_fastapi.auth.managers.models.resource_details import (
            DagAccessEntity,
            DagDetails,
        )

        return bool(
            self._manager().is_authorized_dag(
                method="GET",
                access_entity=DagAccessEntity.RUN,
                details=DagDetails(id=dag_id),
                user=user,
            )
        )


def visible(items: Iterable[Any], viewer: Viewer) -> list[Any]:
    """Only the items (dicts with a `merchant`) of merchants the viewer may see."""
    return [item for item in items if viewer.may_see(str(item.get("merchant", DEFAULT_MERCHANT)))]
