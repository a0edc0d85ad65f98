"""Trigger rules: which fired deadlines and persona entries become email triggers, and when.

Arbitration, for the candidates of one input (highest priority first; when two steps of one
episode compete, e.g. a deferred 1 h cart reminder and the 24 h one, only the later step goes):

1. **blocked** (dropped, reported in ``Outcome.skipped``): an erased customer or no known
   email address; for marketing triggers also withdrawn consent (or none, with
   ``require_consent``) or any suppression; for transactional ones a bounce, a complaint or
   withdrawn transactional consent. The rule's own ``when`` guard must hold too.
2. **send time** (marketing only): the first time at or after ``now`` (the decision time: the
   event's time, or the due time of what fired) outside quiet hours in the
   customer's time zone that also fits the send budget (:mod:`processors.policy`; trigger
   history in ``state.sent``, holdouts included so both groups see the same pacing).
3. **deferred, not dropped**: a trigger that cannot go now is kept in the state as a deadline
   (``Deadline.rule`` set) due at that time, where it competes again with whatever is due
   then; its episode's cancellation (a purchase) removes it. With ``quiet_hours.hold: false``
   a quiet-hours-only delay is emitted at once with ``not_before`` instead.
4. **expiry**: ``expires`` counts from when the trigger first fell due; a trigger that could
   only be sent after that is dropped as expired; ``expires_at`` travels with the trigger.
5. **holdout and variant**: a deterministic share of customers (``settings.holdout``) gets
   ``holdout: true`` (the sink records "would have sent"); experiments assign a variant per
   (experiment, customer).

Trigger ids are ``blake2b(customer, rule, episode, step)``: re-emitting gives the same id.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from processors.deadlines import Fired, schedule, still_valid
from processors.facts import Ctx
from processors.machine import stable_id, utc
from processors.policy import WEEK, assign_variant, budget_check, in_holdout, next_allowed_time
from processors.records import Layout
from processors.ruleset import RuleSet, TriggerRule, _matches
from processors.scoring import rfm, rfm_segment, top_categories
from processors.state import CustomerState, Deadline, Item, Sent, View
from schemas.models import PersonaTransition, Product, Trigger

_TRIGGER = Layout(Trigger, (
    "trigger_id", "customer_id", "trigger_type", "rule_id", "episode", "step", "priority",
    "marketing", "created_at", "not_before", "expires_at", "recipient", "locale", "time_zone",
    "persona", "interest", "journey_stage", "segment", "tokens", "products", "experiment",
    "variant", "holdout", "cause_event_id"))
_PRODUCT = Layout(Product, ("product_id", "name", "category", "price", "quantity"))
"""Output records without re-validation (our own values; ids length-checked), from
positional values (see :class:`processors.records.Layout`)."""

_new = tuple.__new__
"""NamedTuples built without their Python-level ``__new__`` frame (the same tuple)."""
MAX_PRODUCTS = 4
TRANSACTIONAL_BLOCKS = ("bounced", "complained")


class Candidate(NamedTuple):
    """A trigger that may be emitted: rule, episode, step (from 1) and when it fell due."""

    rule: TriggerRule
    source: str
    episode: str
    step: int
    origin: float


class Decision(NamedTuple):
    """What arbitration produced: triggers to emit and (trigger_type, reason) skips."""

    triggers: list[Trigger]
    skipped: list[tuple[str, str]]


class TriggerRules:
    """The trigger rules of a rule set, indexed by source."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.by_id = {r.id: r for r in rules.triggers}
        self.by_deadline: dict[str, list[TriggerRule]] = {}
        self.by_transition: list[TriggerRule] = []
        for rule in rules.triggers:
            if rule.kind == "deadline":
                self.by_deadline.setdefault(rule.source, []).append(rule)
            else:
                self.by_transition.append(rule)

    def for_deadline(self, fired: Fired, ctx: Ctx) -> list[Candidate]:
        """Candidates of a fired deadline whose ``when`` holds (ctx.dl is the deadline)."""
        return [
            _new(Candidate, (r, fired.source, fired.episode, fired.step + 1, fired.origin))
            for r in self.by_deadline.get(fired.source, ())
            if r.guard is None or r.guard.test(ctx)
        ]

    def for_transitions(self, moves: list[PersonaTransition], ctx: Ctx) -> list[Candidate]:
        """Candidates of persona entries (episode: the state and the time it was entered)."""
        out: list[Candidate] = []
        if not self.by_transition:
            return out
        for move in moves:
            for r in self.by_transition:
                if r.dimension == move.dimension and _matches(r.source, move.to_persona) and (
                    r.guard is None or r.guard.test(ctx)
                ):
                    episode = f"{move.to_persona}@{int(ctx.now)}"
                    out.append(_new(Candidate, (r, "transition", episode, 1, ctx.now)))
        return out

    def for_deferred(self, st: CustomerState, d: Deadline) -> Candidate | None:
        """A held-back trigger coming due again, if its rule and reason still hold."""
        rule = self.by_id.get(d.rule)
        if rule is None or not still_valid(st, d.source, d.episode):
            return None
        if d.source == "transition":
            persona = d.episode.rpartition("@")[0]
            if persona not in (st.persona, st.interest, st.journey):
                return None
        return _new(Candidate, (rule, d.source, d.episode, d.step, d.origin or d.due))

    def arbitrate(self, st: CustomerState, cands: list[Candidate], customer_id: str,
                  now: float, cause: str | None) -> Decision:
        """Decide every candidate (see the module docstring); updates ``st.sent`` and defers."""
        decision: Decision = _new(Decision, ([], []))
        if not cands:
            return decision
        latest: dict[tuple[str, str], int] = {}
        for c in cands:
            key = (c.rule.id, c.episode)
            latest[key] = max(latest.get(key, 0), c.step)
        seen: set[tuple[str, str, int]] = set()
        for cand in sorted(cands, key=lambda c: (-c.rule.priority, c.rule.id, c.episode, c.step)):
            key3 = (cand.rule.id, cand.episode, cand.step)
            if key3 in seen:
                continue
            seen.add(key3)
            if cand.step < latest[(cand.rule.id, cand.episode)]:
                decision.skipped.append((cand.rule.trigger_type, "superseded"))
                continue
            self._decide(st, cand, customer_id, now, cause, decision)
        return decision

    def _decide(self, st: CustomerState, cand: Candidate, customer_id: str, now: float,
                cause: str | None, decision: Decision) -> None:
        rule = cand.rule
        reason = self.blocked(st, rule)
        expires_at = cand.origin + rule.expires
        if reason is None and expires_at <= now:
            reason = "expired"
        if reason is not None:
            decision.skipped.append((rule.trigger_type, reason))
            return
        send_at, by_budget = self.send_time(st, rule, now)
        if send_at is None or send_at >= expires_at:
            decision.skipped.append((rule.trigger_type, "capped" if send_at is None else "expired"))
            return
        if send_at > now and (by_budget or self.rules.settings.quiet_hold):
            schedule(st, cand.source, cand.episode, cand.step, send_at, rule.id, cand.origin)
            decision.skipped.append((rule.trigger_type, "deferred"))
            return
        self._record(st, rule, send_at, now)
        decision.triggers.append(self.build(st, cand, customer_id, now, send_at, cause))

    def blocked(self, st: CustomerState, rule: TriggerRule) -> str | None:
        """Why ``rule`` may not reach this customer now, or None."""
        if st.erased_at is not None and st.email is None:
            return "erased"
        if st.email is None:
            return "no_recipient"
        if rule.marketing:
            if st.suppressed is not None:
                return f"suppressed:{st.suppressed}"
            if st.consent_marketing is False or (
                st.consent_marketing is None and self.rules.settings.require_consent
            ):
                return "no_consent"
            return None
        if st.suppressed in TRANSACTIONAL_BLOCKS:
            return f"suppressed:{st.suppressed}"
        return None if st.consent_transactional else "no_consent"

    def send_time(self, st: CustomerState, rule: TriggerRule,
                  now: float) -> tuple[float | None, bool]:
        """(earliest allowed send time or None if never, whether the budget moved it)."""
        if not rule.marketing:
            return now, False
        s = self.rules.settings
        history = [x.at for x in st.sent if x.marketing]
        t, by_budget = now, False
        for _ in range(16):
            t = next_allowed_time(t, st.time_zone, s.quiet)
            ok, slot = budget_check(history, t, s.budget)
            if ok:
                return t, by_budget
            if slot is None:
                return None, True
            t, by_budget = slot, True
        return None, True

    def _record(self, st: CustomerState, rule: TriggerRule, at: float, now: float) -> None:
        sent = [x for x in st.sent if x.at > now - WEEK]
        sent.append(_new(Sent, (math.ceil(at), rule.trigger_type, rule.priority, rule.marketing)))
        sent.sort()
        limit = self.rules.settings.limits.sent
        while len(sent) > limit:
            idx = next((i for i, x in enumerate(sent) if not x.marketing), 0)
            del sent[idx]
        st.sent = sent

    def build(self, st: CustomerState, cand: Candidate, customer_id: str, now: float,
              send_at: float, cause: str | None) -> Trigger:
        """The Trigger record for an accepted candidate (tokens and products included)."""
        rule, s = cand.rule, self.rules.settings
        exp = rule.experiment
        r, f, m = rfm(st.last_order_at, st.orders, st.revenue - st.refunded, now)
        tokens, products = _content(st, cand, now, s.affinity_half_life)
        trigger: Trigger = _TRIGGER.build((
            stable_id(customer_id, rule.id, cand.episode, cand.step),
            customer_id,
            rule.trigger_type,
            rule.id,
            cand.episode,
            int(cand.step),
            int(rule.priority),
            bool(rule.marketing),
            utc(now),
            utc(send_at) if send_at > now else None,
            utc(cand.origin + rule.expires),
            st.email,
            st.locale,
            st.time_zone,
            st.persona or None,
            st.interest if st.interest and st.interest != "none" else None,
            st.journey or None,
            rfm_segment(r, f, m),
            tokens,
            products,
            exp.id if exp else None,
            assign_variant(exp.id, customer_id, exp.variants, exp.weights) if exp else None,
            bool(rule.marketing and s.holdout_share > 0 and rule.holdout
                 and in_holdout(customer_id, s.holdout_salt, s.holdout_share)),
            cause,
        ))
        return trigger


def _product(item: View | Item, quantity: int) -> Product:
    """The Product of a view or a cart line (fields 0-3: product_id, name, category, price;
    ``quantity`` given: 1 for a view, which has none, instead of a failing attribute read)."""
    product: Product = _PRODUCT.build((item[0], item[1], item[2], float(item[3]), quantity))
    return product


def _viewed(st: CustomerState, first: str | None = None) -> list[Product]:
    """Distinct recently viewed products, most recent first (``first`` leading)."""
    seen: set[str] = set()
    out: list[Product] = []
    views = sorted(st.views, key=lambda v: (v.product_id != first, -v.at))
    for v in views:
        if v.product_id not in seen and len(out) < MAX_PRODUCTS:
            seen.add(v.product_id)
            out.append(_product(v, 1))
    return out


def _content(st: CustomerState, cand: Candidate, now: float,
             half_life: float) -> tuple[dict[str, str], list[Product]]:
    """Tokens and products a template needs for this trigger (no value is ever None)."""
    tokens: dict[str, str] = {}
    if st.first_name:
        tokens["first_name"] = st.first_name
    cats = top_categories(st.affinity, now, half_life, 3)
    if cats:
        tokens["categories"] = ", ".join(cats)
        tokens["top_category"] = cats[0]
    products: list[Product]
    if cand.source == "cart" and cand.episode in st.carts:
        cart = st.carts[cand.episode]
        tokens.update(cart_id=cart.cart_id, cart_value=f"{cart.value:.2f}",
                      cart_items=str(sum(i.quantity for i in cart.items.values())),
                      currency=cart.currency)
        products = [_product(i, int(i[4])) for i in list(cart.items.values())[:MAX_PRODUCTS]]
    elif cand.source == "browse":
        product_id = cand.episode.rpartition("@")[0]
        tokens["product_id"] = product_id
        products = _viewed(st, first=product_id)
    else:
        if cand.source == "post_purchase":
            tokens["order_id"] = cand.episode
        products = _viewed(st)
    return tokens, products
