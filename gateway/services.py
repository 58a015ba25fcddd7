"""Everything one running gateway shares: settings, stores, policy, halts, metrics.

Built once by `open_services` and handed to the addons and the admin API, so no stage reaches for
globals and tests can build the same thing against a temporary state directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.approvals.grant_service import GrantService
from gateway.approvals.notify import Notifier, halt_message
from gateway.approvals.service import ApprovalService
from gateway.audit import AuditLog
from gateway.autonomy import AutonomyService
from gateway.egress import AddressGuard
from gateway.evidence import EvidenceStore
from gateway.halt_service import HaltService
from gateway.incidents.chain import ChainBuilder
from gateway.incidents.service import IncidentService
from gateway.metrics import Metrics
from gateway.policy_holder import PolicyHolder
from gateway.postgres.backends import SQLITE, Backend
from gateway.postgres.notify import Listener, listen_to_replicas
from gateway.quarantine.service import QuarantineService
from gateway.scan.pool import ScanPool
from gateway.store import StateStore


@dataclass(frozen=True)
class Settings:
    policy_path: Path
    state_dir: Path
    store: str = SQLITE  # or a postgresql:// URL: `gateway.postgres.backends`
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    admin: tuple[str, int] = ("127.0.0.1", 8081)
    mode: str = "regular"
    connect_to: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    upstream_ca: Path | None = None
    policy_watch_seconds: float = 1.0
    webhooks: tuple[str, ...] = ()  # notified of held calls (gateway.approvals.notify)
    scan_workers: int = 2  # processes that scan bodies (gateway.scan.pool)


@dataclass
class Services:
    settings: Settings
    store: StateStore
    audit: AuditLog
    policy: PolicyHolder
    halts: HaltService
    approvals: ApprovalService
    grants: GrantService
    notifier: Notifier
    metrics: Metrics
    address_guard: AddressGuard
    quarantine: QuarantineService
    scanner: ScanPool
    incidents: IncidentService
    autonomy: AutonomyService
    replicas: Listener | None = None  # other replicas' decisions and halts (PostgreSQL only)

    def close(self) -> None:
        if self.replicas is not None:
            self.replicas.close()
        self.scanner.close()
        self.incidents.store.close()
        self.quarantine.store.close()
        self.approvals.store.close()
        self.grants.store.close()
        self.audit.close()
        self.store.close()


def open_services(settings: Settings) -> Services:
    backend = Backend(settings.store, settings.state_dir)
    store = backend.state()
    audit = backend.audit()
    policy = PolicyHolder(settings.policy_path, store, audit)
    guard = AddressGuard(
        private_networks_allowed=policy.current.private_networks_allowed,
        pinned=settings.connect_to,
        own_listeners=[settings.listen, settings.admin],
    )
    policy.on_change.append(
        lambda new: setattr(guard, "private_networks_allowed", new.private_networks_allowed))
    halts = HaltService(store, audit, policy)
    notifier = Notifier(settings.webhooks, audit)
    metrics = Metrics()
    scanner = ScanPool(settings.scan_workers)
    approvals = ApprovalService(backend.pending(), audit, policy, halts, notifier,
                                metrics, scanner=scanner)
    halts.on_set.append(lambda _halt: approvals.wake_all())
    for listener, lifted in ((halts.on_set, False), (halts.on_lift, True)):
        listener.append(lambda halt, lifted=lifted: notifier.send(halt_message(
            halt, lifted=lifted, waiting=[item.id for item in approvals.waiting_under(halt)])))
    # on the gateway's event loop: decisions and halts of other replicas
    replicas = listen_to_replicas(backend.url, approvals, halts) if backend.url else None
    grants = GrantService(backend.grants(), audit)
    quarantine = QuarantineService(backend.quarantine(),
                                   EvidenceStore(settings.state_dir / "evidence"), audit)
    incidents = IncidentService(backend.incidents(), audit, policy, halts, metrics,
                                ChainBuilder(audit, store, approvals.store))
    autonomy = AutonomyService(audit, policy)
    return Services(settings=settings, store=store, audit=audit, policy=policy, halts=halts,
                    approvals=approvals, grants=grants, notifier=notifier, metrics=metrics,
                    address_guard=guard, quarantine=quarantine,
                    scanner=scanner, incidents=incidents, autonomy=autonomy,
                    replicas=replicas)
