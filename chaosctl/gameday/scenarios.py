"""The game-day scenarios: what each does to the stack, which playbook should fire, and the
objectives it is scored against.

A scenario is a sequence of steps run at the injection moment (most are one step: inject a
`chaosctl inject` fault). Then the expected playbook must fire and repair it, or, when a
scenario expects none, the stack must ride it out on its own. A scenario may then replay
idempotency keys: the ones its disruption cut off (`cut-off`) or ones answered before it
(`settled`), to prove a key never yields a second order or charge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaosctl.errors import InvalidInputError

# Step kinds: inject a fault (with the run's TTL), clear one Redis fault (its chaos key),
# restart a process of the stack (redis included), or wait.
STEP_KINDS = ("inject", "clear", "restart", "wait")
REPLAY_MODES = ("cut-off", "settled")


@dataclass(frozen=True)
class Step:
    kind: str
    target: str  # inject/clear: a fault; restart: a process; wait: "" (seconds in options)
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # what the timeline marker says
    # Time to detect and recover count from this step (default: the first step). A step
    # that only prepares the incident (crash-mid-order's slow payments) does not start it.
    starts_clock: bool = False

    def describe(self) -> str:
        if self.label:
            return self.label
        if self.kind == "wait":
            return f"wait {self.options.get('s', 0):g} s"
        extra = " ".join(f"{k.rstrip('_')}={v}" for k, v in self.options.items())
        return f"{self.kind} {self.target}" + (f" ({extra})" if extra else "")


@dataclass(frozen=True)
class Objectives:
    max_mttd_s: float = 15.0
    # The seed study's MTTR with circuit breakers was 35 s: a game day must beat it.
    max_mttr_s: float = 35.0
    min_success_after: float = 0.95
    max_retry_amplification: float | None = None  # payments calls per order, when scored


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    fault: str | None  # the `chaosctl inject` fault it rehearses (None: not a catalogue fault)
    options: dict[str, Any]
    playbook: str | None  # the playbook expected to fire; None: none should be needed
    objectives: Objectives = field(default_factory=Objectives)
    steps: tuple[Step, ...] = ()  # empty: one step, inject `fault` with `options`
    replay: str | None = None  # cut-off | settled | None
    # How long crash recovery may take to settle pending orders (the orders' 10 s deadline
    # plus a grace) before "orders left pending" is counted.
    pending_grace_s: float = 30.0

    @property
    def actions(self) -> tuple[Step, ...]:
        if self.steps:
            return self.steps
        if self.fault is None:
            return ()
        return (Step("inject", self.fault, dict(self.options),
                     label=f"{self.fault} {self.options}"),)


CRASH_MID_ORDER = (
    # Slow payments (still inside the 2 s hop timeout) so orders pile up mid-flight: 20/s x
    # 0.8 s = 16 at the kill, inside orders' payments bulkhead (20). At +1500 ms it took 30:
    # the bulkhead refused a third of the orders, the success rate over 15 s fell to ~0.95
    # just as orders was killed, and payment-degradation fired before service-down in 3 of
    # 7 runs (0 of 5 with the old gateway: a race either way)...
    Step("inject", "payment-latency", {"ms": 800}, label="payments +800 ms"),
    Step("wait", "", {"s": 3.0}),
    # ...then SIGKILL orders with them in flight. `service-down` rather than a bare kill:
    # it carries the run's TTL, so even a lost chaosctl cannot leave orders down.
    Step("inject", "service-down", {"service": "orders", "for_": "0"},
         label="SIGKILL orders (requests in flight)", starts_clock=True),
    # The slowness only widened the window; what is left is the crash itself.
    Step("clear", "payment-latency", label="payments latency cleared"),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("payment-errors", "payments fails half of its charges",
             "payment-errors", {"rate": 0.5}, "payment-degradation"),
    Scenario("payment-slow", "payments answers after 3 s (beyond the 2 s hop timeout)",
             "payment-latency", {"ms": 3000}, "payment-degradation"),
    Scenario("inventory-lock", "inventory holds its stock lock 2 s per reservation",
             "inventory-lock", {"ms": 2000}, "inventory-lock-contention"),
    Scenario("inventory-errors", "inventory fails half of its reservations",
             "inventory-errors", {"rate": 0.5}, "inventory-errors"),
    Scenario("gateway-overload", "an open-loop burst far above what the stack serves",
             "overload", {"rps": 600, "for_": "60s"}, "gateway-overload"),
    Scenario("notifications-down", "notifications is killed and stays down",
             "notifications-down", {"for_": "0"}, "outbox-backlog"),
    Scenario("service-crash", "payments is killed (SIGKILL) and stays down",
             "service-down", {"service": "payments", "for_": "0"}, "service-down"),
    Scenario("service-hang", "inventory is frozen (SIGSTOP) and stays frozen",
             "service-hang", {"service": "inventory", "for_": "0"}, "service-down"),
    # The retry budget (20 % of calls) is what keeps this from becoming a storm: the
    # retry-storm playbook (retries > 2x requests) must NOT fire; the payments degradation
    # behind it must, and amplification must stay near the study's 1.1x.
    Scenario("retry-storm", "payment errors plus clients that re-POST every failure at once; "
             "the retry budget must keep amplification low",
             "retry-storm", {"rate": 0.5, "rps": 20, "for_": "60s"}, "payment-degradation",
             Objectives(max_retry_amplification=1.3)),
    # Orders stays down until someone starts it: service-down is what must notice and do it
    # (a crash nobody restarts is the incident). The cut-off keys are replayed afterwards.
    Scenario("crash-mid-order", "payments slowed, orders SIGKILLed with orders in flight, "
             "started again by the playbook, the cut-off Idempotency-Keys replayed",
             "service-down", {"service": "orders", "for_": "0"}, "service-down",
             steps=CRASH_MID_ORDER, replay="cut-off"),
    # Nothing a playbook should act on: services refuse keyed orders for the second Redis is
    # away (503 idempotency_unavailable, never a write without the key) and carry on. What is
    # scored is that Redis comes back remembering every key: replays make no new order.
    Scenario("redis-restart", "Redis restarted under traffic; keys answered before it are "
             "replayed and must not make a new order or charge",
             None, {}, None,
             steps=(Step("restart", "redis", label="restart redis"),), replay="settled"),
)}


def covering(fault: str) -> list[Scenario]:
    """The scenarios that rehearse `fault` (the coverage matrix reads this). A fault used
    only as a helper inside another scenario's steps (crash-mid-order's payment latency)
    does not count: its playbook is not what that scenario expects."""
    return [s for s in SCENARIOS.values() if s.fault == fault]


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown scenario {name!r}; valid: {', '.join(SCENARIOS)}") from None
