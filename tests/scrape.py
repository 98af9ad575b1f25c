"""Reading /metrics in tests: every sample of the Prometheus text, summed over label subsets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    samples: list[tuple[str, dict[str, str], float]]
    families: set[str]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0 when none);
        `from_` stands for the label `from`."""
        wanted = {k.rstrip("_"): v for k, v in labels.items()}
        return sum(
            value
            for sample, have, value in self.samples
            if sample == name and all(have.get(k) == v for k, v in wanted.items())
        )

    def has(self, name: str, **labels: str) -> bool:
        wanted = {k.rstrip("_"): v for k, v in labels.items()}
        return any(
            sample == name and all(have.get(k) == v for k, v in wanted.items())
            for sample, have, _ in self.samples
        )


def parse(text: str) -> Scrape:
    samples = []
    families = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        samples.extend((s.name, dict(s.labels), s.value) for s in family.samples)
    return Scrape(samples, families)


async def scrape(client: TestClient[Any, Any]) -> Scrape:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(await response.text())
