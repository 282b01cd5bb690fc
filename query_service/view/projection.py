"""How OrderPlaced events change a user's items view: pure, no infrastructure.

The view is kept as small records, so that an event reads and writes only what it touches:
- one line per (user, price group, sku, unit price): name, quantity, how many orders bought it;
- one summary per (user, price group): item count, exact total in pence, number of lines;
- per user, how many orders were applied (an order's sequence number, for listing them).
Money is integer pence and is formatted only at the API edge. Whether an order was already
applied is the store's to say (its order records); `fold` takes the events that are new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from query_service.view.decoding import Placed
from shared.money import AFFORDABLE_FROM_MINOR, AFFORDABLE_UP_TO_MINOR, PriceGroup

GROUPS: Final = tuple(str(group.value) for group in PriceGroup)
_CHEAP: Final = str(PriceGroup.CHEAP.value)
_AFFORDABLE: Final = str(PriceGroup.AFFORDABLE.value)
_EXPENSIVE: Final = str(PriceGroup.EXPENSIVE.value)


class LineId(NamedTuple):
    user_id: str
    group: str
    sku: str
    unit_price_minor: int


class SummaryId(NamedTuple):
    user_id: str
    group: str


class Line(NamedTuple):
    name: str
    quantity: int
    order_count: int


class Summary(NamedTuple):
    item_count: int
    total_minor: int
    line_count: int


EMPTY_SUMMARY: Final = Summary(0, 0, 0)

# The fold makes several of these per item: tuple.__new__ builds a NamedTuple without running
# its __new__, which is Python code and most of the cost.
_new = tuple.__new__


class AppliedOrder(NamedTuple):
    """An order the view holds, with its place among the user's orders (1 = the first)."""

    event: Placed
    sequence: int


@dataclass
class Changes:
    """What a batch changed: every record's new value, and the orders it applied."""

    lines: dict[LineId, Line] = field(default_factory=dict)
    summaries: dict[SummaryId, Summary] = field(default_factory=dict)
    order_counts: dict[str, int] = field(default_factory=dict)
    orders: list[AppliedOrder] = field(default_factory=list)
    duplicates: int = 0

    def absorb(self, other: Changes) -> None:
        """Add the changes of another partition's batch (their users are disjoint)."""
        self.lines.update(other.lines)
        self.summaries.update(other.summaries)
        self.order_counts.update(other.order_counts)
        self.orders += other.orders
        self.duplicates += other.duplicates


def group_of(unit_price_minor: int) -> str:
    # PriceGroup.of's rule without its enum: a fifth of the cost, run once per item.
    if unit_price_minor < AFFORDABLE_FROM_MINOR:
        return _CHEAP
    return _AFFORDABLE if unit_price_minor <= AFFORDABLE_UP_TO_MINOR else _EXPENSIVE


def touched(events: Iterable[Placed]) -> tuple[list[LineId], list[SummaryId], list[str]]:
    """The records folding `events` reads: lines, summaries and users, each once."""
    lines: dict[LineId, None] = {}
    summaries: dict[SummaryId, None] = {}
    users: dict[str, None] = {}
    for user_id, _, items, _, _ in events:
        users[user_id] = None
        for sku, _, price, _ in items:
            # group_of, inlined: this runs for every item of every event
            if price < AFFORDABLE_FROM_MINOR:
                group = _CHEAP
            else:
                group = _AFFORDABLE if price <= AFFORDABLE_UP_TO_MINOR else _EXPENSIVE
            lines[_new(LineId, (user_id, group, sku, price))] = None
            summaries[_new(SummaryId, (user_id, group))] = None
    return list(lines), list(summaries), list(users)


def fold(
    events: Sequence[Placed],
    lines: Mapping[LineId, Line | None],
    summaries: Mapping[SummaryId, Summary | None],
    order_counts: Mapping[str, int],
) -> Changes:
    """Fold new events, in order, into the records they touch (as `touched` names them).

    An order id seen twice in `events` is applied once. The inputs are left unchanged.
    """
    changes = Changes()
    new_lines = changes.lines
    new_summaries = changes.summaries
    counts = changes.order_counts
    seen: set[tuple[str, str]] = set()
    for event in events:
        user_id, order_id, items, _, _ = event
        if (user_id, order_id) in seen:
            changes.duplicates += 1
            continue
        seen.add((user_id, order_id))
        sequence = counts.get(user_id, order_counts.get(user_id, 0)) + 1
        counts[user_id] = sequence
        changes.orders.append(_new(AppliedOrder, (event, sequence)))
        counted: set[LineId] = set()
        for sku, name, price, quantity in items:
            if price < AFFORDABLE_FROM_MINOR:  # group_of, inlined
                group = _CHEAP
            else:
                group = _AFFORDABLE if price <= AFFORDABLE_UP_TO_MINOR else _EXPENSIVE
            line_id = _new(LineId, (user_id, group, sku, price))
            summary_id = _new(SummaryId, (user_id, group))
            summary = new_summaries.get(summary_id) or summaries.get(summary_id) or EMPTY_SUMMARY
            line = new_lines.get(line_id) or lines.get(line_id)
            if line is None:
                new_lines[line_id] = _new(Line, (name, quantity, 1))
                new_summaries[summary_id] = _new(
                    Summary, (summary[0] + quantity, summary[1] + price * quantity, summary[2] + 1)
                )
            else:
                # One order may list the same (sku, price) twice: it counts once per line.
                first_time = line_id not in counted
                new_lines[line_id] = _new(Line, (line[0], line[1] + quantity, line[2] + first_time))
                new_summaries[summary_id] = _new(
                    Summary, (summary[0] + quantity, summary[1] + price * quantity, summary[2])
                )
            counted.add(line_id)
    return changes
