"""Response scanning cost per body, per tier, on distinct realistic JSON API responses.

    .venv/bin/python tests/bench/bench_scanner.py [--bodies 300] [--tiers patterns,ner]

Faker (seeded) writes a pool of DISTINCT bodies of about 1 KB and 10 KB: customer records,
support tickets, orders, product pages and event logs, with ids, uuids, timestamps, status enums,
amounts, urls and free-text notes; about half carry personal data (e-mail addresses, phones,
names, addresses, SSNs, cards, IBANs). Each body is scanned once, single process, through
`scan_json` with the policy a deployment would write; the analyzers are built and a few bodies
of another seed are scanned first, as a worker that has been running a while would have.
Prints the median and p90 milliseconds per body and bodies per second (1000 / median).
`--clock cpu` times with this process's CPU time instead of the wall clock: steadier on a
machine other work shares, and what a scanning worker process costs.

Targets (issue: response scanning on 2 cores): 1 KB `patterns` well under 1 ms, `ner` under 4 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a plain script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson  # noqa: E402
from faker import Faker  # noqa: E402

from gateway.scan.analyzer import get_analyzer  # noqa: E402
from gateway.scan.redact import Outcome, scan_json  # noqa: E402
from gateway.scan.settings import ScanSettings  # noqa: E402

STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE")
POLICIES = {
    "patterns": ScanSettings(tier="patterns", detect=("PHONE_NUMBER", "IP_ADDRESS"),
                             redact=("EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD"),
                             quarantine=("IBAN_CODE",)),
    "ner": ScanSettings(tier="ner", detect=("PHONE_NUMBER", "LOCATION"),
                        redact=("EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD", "PERSON"),
                        quarantine=("IBAN_CODE",)),
}
STATUSES = ("open", "pending", "closed", "resolved", "on_hold", "escalated")
ORDER_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "refunded")
CURRENCIES = ("USD", "EUR", "GBP")
KINDS = ("Kit", "Pro", "Mini")


class Bodies:
    """Seeded generator of API-shaped JSON records, with or without personal data."""

    def __init__(self, seed: int) -> None:
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.rng = random.Random(seed)

    def _ts(self) -> str:
        return self.fake.date_time_this_decade().isoformat() + "Z"

    def _note(self, pii: bool) -> str:
        f = self.fake
        if not pii:
            return f.paragraph(nb_sentences=self.rng.randint(1, 3))
        return self.rng.choice([
            f"Customer {f.name()} called about invoice {f.bothify('INV-#####')}. "
            f"{f.sentence()} Call back on {f.phone_number()}.",
            f"{f.sentence()} Spoke with {f.first_name()} from {f.city()}; "
            f"new address {f.street_address()}, {f.city()}.",
            f"Refund to card {f.credit_card_number()} approved by {f.name()}. {f.sentence()}",
            f"Verified identity, SSN {f.ssn()}. {f.paragraph(nb_sentences=2)}",
            f"Wire to {f.iban()} pending review. {f.sentence()}",
            f"Forwarded to {f.email()} and {f.name()}. {f.sentence()}",
        ])

    def customer(self, pii: bool) -> dict[str, Any]:
        f = self.fake
        return {
            "id": f"cus_{f.bothify('??##??##??##').lower()}",
            "uuid": f.uuid4(),
            "object": "customer",
            "created_at": self._ts(),
            "status": self.rng.choice(STATUSES[:3]),
            "name": f.name() if pii else f.company(),
            "email": f.email() if pii else None,
            "phone": f.phone_number() if pii else None,
            "address": {
                "line1": f.street_address(), "city": f.city(), "state": f.state_abbr(),
                "postal_code": f.postcode(), "country": "US",
            } if pii else None,
            "balance": round(self.rng.uniform(-500, 5000), 2),
            "currency": self.rng.choice(CURRENCIES),
            "delinquent": self.rng.random() < 0.1,
            "metadata": {"segment": self.rng.choice(("smb", "enterprise", "consumer")),
                         "crm_id": self.rng.randint(10**6, 10**8)},
            "notes": self._note(pii),
            "url": f"https://api.example.com/v1/customers/{f.uuid4()}",
        }

    def ticket(self, pii: bool) -> dict[str, Any]:
        f = self.fake
        return {
            "id": self.rng.randint(10_000, 9_999_999),
            "subject": f.sentence(nb_words=6),
            "status": self.rng.choice(STATUSES),
            "priority": self.rng.choice(("low", "normal", "high", "urgent")),
            "requester": {"email": f.email(), "name": f.name()} if pii else {"id": f.uuid4()},
            "assignee_id": self.rng.randint(1000, 99999),
            "tags": self.rng.sample(["billing", "refund", "login", "api", "bug", "vip"], 2),
            "description": self._note(pii),
            "created_at": self._ts(),
            "updated_at": self._ts(),
            "via": {"channel": self.rng.choice(("web", "email", "api", "chat"))},
            "url": f.url() + f"tickets/{self.rng.randint(1, 99999)}.json",
        }

    def order(self, pii: bool) -> dict[str, Any]:
        f = self.fake
        items = [{
            "sku": f.bothify("SKU-####-??").upper(),
            "name": f"{f.color_name()} {f.word().title()} {self.rng.choice(KINDS)}",
            "quantity": self.rng.randint(1, 5),
            "unit_price": round(self.rng.uniform(2, 400), 2),
        } for _ in range(self.rng.randint(1, 3))]
        order: dict[str, Any] = {
            "order_id": f.bothify("ORD-########"),
            "customer_id": f.uuid4(),
            "status": self.rng.choice(ORDER_STATUSES),
            "placed_at": self._ts(),
            "items": items,
            "total": round(sum(i["quantity"] * i["unit_price"] for i in items), 2),
            "currency": self.rng.choice(CURRENCIES),
            "tracking_url": f"https://track.example.net/{f.bothify('1Z###??########')}",
        }
        if pii:
            order["shipping"] = {"name": f.name(), "address": f.address(),
                                 "phone": f.phone_number()}
            order["payment"] = {"card": f.credit_card_number(), "exp": f.credit_card_expire()}
        return order

    def event(self, pii: bool) -> dict[str, Any]:
        f = self.fake
        return {
            "event_id": f.uuid4(),
            "type": self.rng.choice(("invoice.paid", "user.login", "job.finished", "sync.failed")),
            "ts": self._ts(),
            "source_ip": f.ipv4_public(),
            "duration_ms": self.rng.randint(1, 90_000),
            "attempt": self.rng.randint(1, 4),
            "message": f"User {f.user_name()} <{f.email()}> logged in" if pii else f.sentence(),
            "ok": self.rng.random() < 0.9,
        }

    def body(self, size: int, pii: bool) -> bytes:
        """A `{"data": [...], "has_more": ...}` page of one record kind, about `size` bytes."""
        make = self.rng.choice((self.customer, self.ticket, self.order, self.event))
        records: list[dict[str, Any]] = []
        page: dict[str, Any] = {"object": "list", "data": records, "has_more": True,
                                "next_cursor": self.fake.sha1()[:24]}
        while True:
            # Only some records of a PII body carry personal data, as in a real page.
            records.append(make(pii and (not records or self.rng.random() < 0.5)))
            if len(orjson.dumps(page)) >= size:
                break
        if len(records) > 1 and len(orjson.dumps(page)) > size * 1.3:
            records.pop()
        return orjson.dumps(page)


def pool(count: int, size: int, seed: int) -> list[bytes]:
    """`count` distinct bodies of about `size` bytes; every other one carries personal data."""
    gen = Bodies(seed)
    bodies = {gen.body(size, pii=i % 2 == 0) for i in range(count)}
    return sorted(bodies, key=lambda b: gen.rng.random())


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def measure(bodies: list[bytes], settings: ScanSettings,
            clock: Any = time.perf_counter) -> tuple[list[float], int]:
    times: list[float] = []
    flagged = 0
    for body in bodies:
        start = clock()
        result = scan_json(body, settings.tier, settings)
        times.append(clock() - start)
        flagged += result.outcome is not Outcome.PASS
    return times, flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=300, help="distinct bodies per size")
    parser.add_argument("--tiers", default="patterns,ner")
    parser.add_argument("--sizes", default="1024,10240")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    sizes = [int(s) for s in args.sizes.split(",")]
    warm = {size: pool(10, size, seed=99) for size in sizes}
    pools = {size: pool(args.bodies, size, seed=size) for size in sizes}
    for size in sizes:
        lengths = [len(b) for b in pools[size]]
        print(f"{size:>6} B pool: {len(lengths)} distinct bodies, "
              f"median {statistics.median(lengths):.0f} B", flush=True)
    print(f"{'tier':<9}{'size':>7}{'median ms':>11}{'p90 ms':>9}{'bodies/s':>10}{'flagged':>9}")
    for tier in args.tiers.split(","):
        settings = POLICIES[tier]
        get_analyzer(tier)
        for size in sizes:
            measure(warm[size], settings)
            times, flagged = measure(pools[size], settings, clock)
            median = statistics.median(times) * 1000
            p90 = statistics.quantiles(times, n=10)[-1] * 1000
            print(f"{tier:<9}{size:>7}{median:>11.2f}{p90:>9.2f}{1000 / median:>10.0f}"
                  f"{flagged:>6}/{len(times)}", flush=True)


if __name__ == "__main__":
    main()
