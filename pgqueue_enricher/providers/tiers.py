"""Which Gemini service tier a lane's calls use, and what a Flex call's failures mean.

The backfill lane has no deadline, so by default it runs on Flex (half price, best effort,
minutes of latency); the interactive lane stays on standard. Flex sheds load with 429/503:
that is a wait (the row goes back to pending with its attempt given back), not a failure.
If the API refuses the tier itself (a 400 that names it), the lane falls back to standard
for the rest of the process, says so once in the log, and the worker records it for
`status`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pgqueue_enricher.errors import TransientFailure
from pgqueue_enricher.logs import get_logger
from pgqueue_enricher.redact import scrub
from pgqueue_enricher.settings import Settings

STANDARD = "standard"
FLEX = "flex"
log = get_logger("pgqueue_enricher.providers.tiers")

# What a 400 about the tier itself says: the field's name in either spelling, or "flex".
_NAMES_THE_TIER = re.compile(r"service[_ ]?tier|\bflex\b", re.I)


class FlexShed(TransientFailure):
    """Flex had no capacity for the call (429/503): try again later, at no attempt's cost."""

    spends_attempt = False


@dataclass(frozen=True)
class Fallback:
    lane: str
    configured: str
    effective: str
    reason: str


@dataclass
class TierPolicy:
    """Lane -> tier for one describer; shared by its concurrent calls."""

    configured: dict[str, str]
    flex_timeout: float
    standard_timeout: float
    _fallen_back: dict[str, Fallback] = field(default_factory=dict)
    _unrecorded: list[Fallback] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> TierPolicy:
        return cls(
            configured={
                "interactive": settings.pass2_interactive_tier,
                "backfill": settings.pass2_backfill_tier,
            },
            flex_timeout=settings.pass2_flex_timeout,
            standard_timeout=settings.pass2_gemini_timeout,
        )

    def tier_for(self, lane: str) -> str:
        if lane in self._fallen_back:
            return STANDARD
        return self.configured.get(lane, STANDARD)

    def timeout_for(self, tier: str) -> float:
        """Flex answers within 1-15 minutes: its calls wait at least PASS2_FLEX_TIMEOUT."""
        return max(self.flex_timeout, self.standard_timeout) if tier == FLEX else self.standard_timeout

    def fall_back(self, lane: str, tier: str, reason: str) -> bool:
        """The API refused `tier` for `lane`: use standard from now on. True the first time."""
        if lane in self._fallen_back or tier == STANDARD:
            return False
        reason = scrub(reason)[:300]
        fallback = Fallback(lane, tier, STANDARD, reason)
        self._fallen_back[lane] = fallback
        self._unrecorded.append(fallback)
        log.warning(
            "service_tier_refused",
            lane=lane,
            tier=tier,
            now_using=STANDARD,
            reason=reason,
            detail=f"the {lane} lane falls back to the standard tier (price x2) until restart",
        )
        return True

    def take_unrecorded(self) -> list[Fallback]:
        """Fallbacks not yet written to the database (for `status`), each handed out once."""
        taken, self._unrecorded = self._unrecorded, []
        return taken


def names_the_tier(message: str) -> bool:
    return bool(_NAMES_THE_TIER.search(message or ""))
