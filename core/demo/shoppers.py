"""How the demo shop's customers behave, simulated for all users of a chunk at once.

Habits that need more than the last event to predict, as in a real shop:

- sessions: minutes apart inside, days to weeks between; a session is about one of the user's
  interests (mostly not the one the last session was about) and stays mostly in it;
- interests that drift: each user follows two or three categories (correlated with their
  profile segment) whose mix shifts from session to session, and now and then one is replaced;
- brand loyalty: much of a user's browsing is in one brand, whatever the category;
- missions: a user comes back with a goal, reached after a few browsing steps (never as the
  next event): the next piece of a product line they follow in that interest (Part 3 after
  Part 2, bought sessions earlier), the accessory of an earlier purchase, or the first piece
  of a new line (collectors, mostly of their brand);
- funnels: view → cart → purchase with comparison views in between, abandoned carts finished
  in a later session, and looks at recently viewed items again (repeats stay in the log);
- launches and trends: an item released during the period, or an older product in a trend
  of its own, is shown to shoppers of its category (at a session's start most, but also while
  they browse) with a spike that fades over the following weeks, and a line's followers come
  back for a new piece soon after it comes out;
- seasons: each category's share of the sessions and of the new interests swings over the year.

Each step advances every user who still has events left; users are ordered by length so the
active ones are always a prefix of the state arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from core.demo.catalogue import BRANDS, Catalogue, season

AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55+")
GENDERS = ("F", "M")
REGIONS = ("North", "South", "East", "West")
N_SEGMENTS = len(AGE_GROUPS) * len(GENDERS)
VIEW, CART, PURCHASE = 0, 1, 2
MAX_EVENTS_PER_USER = 500
DAY = 86_400.0
_NEW_SESSION = 0.3  # chance that the next event opens a new session (sessions average 3.3 events)
_BUZZ_WINDOW = 21 * DAY  # how long a launch or a trend lasts at most ...
_BUZZ_FADE = 7 * DAY  # ... fading from its start: shown exp(-age / _BUZZ_FADE) as often as on its first day
_BUZZ_IN_BROWSING = 0.2  # chance that a browsing step (other than a session's first) looks at what is buzzing
RECENT = 4  # items a user remembers having looked at lately


@dataclass
class _State:
    """What each active user is doing; arrays are cut to the active prefix every step."""

    interests: np.ndarray  # (n, 3) categories the user follows
    weights: np.ndarray  # (n, 3) how strongly, drifting from session to session
    segment: np.ndarray  # profile segment (age group × gender)
    collector: np.ndarray  # follows product lines and starts new ones
    brand: np.ndarray  # the brand the user is loyal to
    slot: np.ndarray  # the interest (0-2) the current session is about
    session_cat: np.ndarray  # the category the current session is about
    focus: np.ndarray  # item being considered (viewed or in the cart), -1 if none
    stage: np.ndarray  # VIEW or CART: where the focus is in the funnel
    focus_is_goal: np.ndarray  # the focus is what the session came for
    goal: np.ndarray  # item the session came for, -1 if none
    goal_wait: np.ndarray  # browsing steps left before the goal is looked at
    line_next: np.ndarray  # (n, 3) next piece of the line followed in each interest, -1 if none
    wanted_accessory: np.ndarray  # accessory of an earlier purchase, -1 if none
    recent: np.ndarray  # (n, RECENT) items viewed lately, -1 where none yet: looked at again, they make repeats

    def prefix(self, n: int) -> "_State":
        return _State(*(getattr(self, f.name)[:n] for f in fields(self)))


def simulate_users(rng: np.random.Generator, cat: Catalogue, length: np.ndarray, segment: np.ndarray,
                   first_ts: float, span_s: float) -> dict[str, np.ndarray]:
    """Events of users ``0 .. len(length) - 1``: arrays ``user``, ``item``, ``kind``, ``ts`` in user and time order."""
    n_users = len(length)
    offsets = np.r_[0, np.cumsum(length)]
    users = np.repeat(np.arange(n_users), length)
    new_session = rng.random(len(users)) < _NEW_SESSION
    new_session[offsets[:-1][length > 0]] = True
    ts = _timestamps(rng, first_ts, span_s, users, new_session, n_users)
    order = np.argsort(-length, kind="stable")  # active users stay a prefix as steps advance
    n_active_at = np.searchsorted(-length[order], -np.arange(length.max(initial=0)), side="left")
    state = _initial_state(rng, cat, segment[order])
    item = np.zeros(len(users), dtype=np.int64)
    kind = np.zeros(len(users), dtype=np.int64)
    for step, n in enumerate(n_active_at):
        state = state.prefix(n)
        at = offsets[order[:n]] + step
        item[at], kind[at] = _step(rng, cat, state, new_session[at], ts[at])
        state.recent[kind[at] == VIEW, step % RECENT] = item[at][kind[at] == VIEW]
    return {"user": users, "item": item, "kind": kind, "ts": _one_second_apart(ts.astype(np.int64), users)}


def _initial_state(rng: np.random.Generator, cat: Catalogue, segment: np.ndarray) -> _State:
    n = len(segment)
    weights = rng.dirichlet(np.full(3, 2.0), n)
    weights[rng.random(n) < 0.5, 2] = 0.0  # half the users follow only two categories
    none = np.full(n, -1)
    return _State(interests=_initial_interests(rng, cat, segment), weights=weights, segment=segment,
                  collector=rng.random(n) < 0.75, brand=rng.integers(len(BRANDS), size=n),
                  slot=np.zeros(n, dtype=np.int64), session_cat=np.zeros(n, dtype=np.int64), focus=none.copy(),
                  stage=np.full(n, VIEW), focus_is_goal=np.zeros(n, bool), goal=none.copy(),
                  goal_wait=np.zeros(n, dtype=np.int64), line_next=np.full((n, 3), -1), wanted_accessory=none.copy(),
                  recent=np.full((n, RECENT), -1))


def _initial_interests(rng: np.random.Generator, cat: Catalogue, segment: np.ndarray) -> np.ndarray:
    """Three distinct categories per user, mostly the ones the user's profile segment favours."""
    prior = np.diff(cat.segment_cdf, axis=1, prepend=0.0)
    mixed = 0.85 * prior[segment] + 0.15 / prior.shape[1]
    keys = np.log(mixed) + rng.gumbel(size=mixed.shape)  # Gumbel top-k = sampling without replacement
    return np.argsort(-keys, axis=1)[:, :3].copy()


def _step(rng, cat: Catalogue, s: _State, starting: np.ndarray, now: np.ndarray):
    """One event for every active user: continue the funnel, look at the goal, or browse."""
    n = len(starting)
    if starting.any():
        _start_sessions(rng, cat, s, np.flatnonzero(starting), now)
    r = rng.random(n)
    has_focus = s.focus >= 0
    p_advance = np.where(s.stage == VIEW, np.where(s.focus_is_goal, 0.75, 0.1), np.where(s.focus_is_goal, 0.9, 0.55))
    advance = has_focus & (r < p_advance)
    compare = has_focus & s.focus_is_goal & ~advance & (r < p_advance + 0.15)  # looks at an alternative first
    dropped = has_focus & ~advance & ~compare
    s.focus[dropped] = -1
    to_goal = ~advance & ~compare & (s.goal >= 0) & (s.goal_wait <= 0)
    browse = ~advance & ~to_goal
    item = np.where(advance, s.focus, s.goal)
    kind = np.where(advance, s.stage + 1, VIEW)
    item[browse] = _browse(rng, cat, s, np.flatnonzero(browse), starting, now)
    s.goal_wait -= 1
    considered = to_goal | (browse & ~compare)  # a comparison view leaves the focus where it was
    s.focus_is_goal[considered] = to_goal[considered]
    s.focus[considered] = item[considered]
    s.stage[considered] = VIEW
    s.goal[to_goal] = -1
    bought = np.flatnonzero(advance & (s.stage == CART))
    s.stage[advance] = CART
    if len(bought):
        _after_purchase(rng, cat, s, bought, item[bought])
        s.focus[bought] = -1
    return item, kind


def _start_sessions(rng, cat: Catalogue, s: _State, who: np.ndarray, now: np.ndarray) -> None:
    """A new session: interests drift, a category is chosen, and a user without a goal may set one,
    reached after some browsing (in this session or a later one).

    A viewed item is forgotten between sessions; an item in the cart is not.
    """
    _drift_interests(rng, cat, s, who, now[who])
    slot = _next_interest(rng, cat, s, who, now[who])
    s.slot[who] = slot
    s.session_cat[who] = s.interests[who, slot]
    n, r = len(who), rng.random(len(who))
    explore = rng.random(n) < 0.08  # a session outside the user's interests has no mission
    s.session_cat[who[explore]] = _seasonal_category(rng, cat, s.segment[who[explore]], now[who[explore]])
    viewed = who[s.stage[who] == VIEW]
    s.focus[viewed] = -1
    piece = np.where(explore | (s.goal[who] >= 0), -1, s.line_next[who, slot])
    on_sale = (piece >= 0) & (cat.released[np.maximum(piece, 0)] <= now[who])
    just_out = on_sale & (now[who] - cat.released[np.maximum(piece, 0)] < 14 * DAY)
    line = on_sale & (r < np.where(just_out, 0.95, 0.8))
    accessory = ~line & (s.goal[who] < 0) & (s.wanted_accessory[who] >= 0) & (rng.random(n) < 0.45)
    c = s.session_cat[who]
    starters = cat.starters_from[c + 1] - cat.starters_from[c]
    new_line = (~line & ~accessory & ~explore & (s.goal[who] < 0) & s.collector[who] & (s.line_next[who, slot] < 0)
                & (starters > 0) & (rng.random(n) < 0.5))
    s.goal[who[line]] = piece[line]
    s.goal[who[accessory]] = s.wanted_accessory[who[accessory]]
    s.wanted_accessory[who[accessory]] = -1
    s.goal[who[new_line]] = _starter(rng, cat, c[new_line], s.brand[who[new_line]])
    planned = who[line | accessory | new_line]
    s.goal_wait[planned] = 4 + rng.integers(0, 4, len(planned))  # browsing first: the goal is never the next event


def _starter(rng, cat: Catalogue, categories: np.ndarray, brands: np.ndarray) -> np.ndarray:
    """A line to start in each category: one of the user's brand where the category has one."""
    key = categories * len(BRANDS) + brands
    low = np.searchsorted(cat.starter_keys, key, side="left")
    high = np.searchsorted(cat.starter_keys, key, side="right")
    own = high > low
    low[~own], high[~own] = cat.starters_from[categories[~own]], cat.starters_from[categories[~own] + 1]
    return cat.line_starters[low + np.floor(rng.random(len(key)) * (high - low)).astype(np.int64)]


def _drift_interests(rng, cat: Catalogue, s: _State, who: np.ndarray, now: np.ndarray) -> None:
    """Tastes move: the mix of a user's categories shifts every session, and one is sometimes replaced
    (by a category in season more often)."""
    weights = s.weights[who] * rng.lognormal(0.0, 0.35, (len(who), 3)) * (s.weights[who] > 0)
    s.weights[who] = weights / weights.sum(axis=1, keepdims=True)
    chosen = rng.random(len(who)) < 0.08
    replaced = who[chosen]
    if len(replaced):
        slot = np.argmin(s.weights[replaced] + (s.weights[replaced] == 0), axis=1)  # the weakest interest goes
        s.interests[replaced, slot] = _seasonal_category(rng, cat, s.segment[replaced], now[chosen])
        s.line_next[replaced, slot] = -1


def _next_interest(rng, cat: Catalogue, s: _State, who: np.ndarray, now: np.ndarray) -> np.ndarray:
    """The interest a new session is about: mostly not the one the last session was about, and more
    often one in season."""
    weights = s.weights[who] * season(cat, s.interests[who], now[:, None])
    switch = rng.random(len(who)) < 0.7
    weights[switch, s.slot[who[switch]]] = 0.0
    stuck = weights.sum(axis=1) == 0
    weights[stuck] = s.weights[who[stuck]]
    return _sample_from_cdf(rng, np.cumsum(weights, axis=1))


def _interest_categories(rng, cat: Catalogue, s: _State, who: np.ndarray, now: np.ndarray) -> np.ndarray:
    """A category per user from their current interest mix (as the season weighs it); now and then
    one outside it."""
    weights = s.weights[who] * season(cat, s.interests[who], now[:, None])
    chosen = s.interests[who, _sample_from_cdf(rng, np.cumsum(weights, axis=1))]
    explore = rng.random(len(who)) < 0.08
    chosen[explore] = _seasonal_category(rng, cat, s.segment[who[explore]], now[explore])
    return chosen


def _seasonal_category(rng, cat: Catalogue, segment: np.ndarray, now: np.ndarray) -> np.ndarray:
    """A category per user from their profile segment's prior, as the season weighs it."""
    prior = np.diff(cat.segment_cdf[segment], axis=1, prepend=0.0)
    return _sample_from_cdf(rng, np.cumsum(prior * season(cat, np.arange(prior.shape[1]), now[:, None]), axis=1))


def _browse(rng, cat: Catalogue, s: _State, who: np.ndarray, starting: np.ndarray, now: np.ndarray) -> np.ndarray:
    """Items looked at while browsing: mostly the session's category, launches and trends (first
    thing in a session most), and returns to items looked at lately (repeats)."""
    n = len(who)
    stay = ~starting[who] & (rng.random(n) < 0.6)
    categories = np.where(stay, s.session_cat[who], _interest_categories(rng, cat, s, who, now[who]))
    items = sample_items(rng, cat, categories, now[who])
    loyal = np.flatnonzero(rng.random(n) < 0.6)
    items[loyal] = sample_brand_items(rng, cat, categories[loyal], s.brand[who[loyal]], now[who[loyal]], items[loyal])
    fresh = np.flatnonzero(rng.random(n) < np.where(starting[who], 0.5, _BUZZ_IN_BROWSING))
    buzz = buzzing_items(rng, cat, categories[fresh], now[who[fresh]])
    items[fresh[buzz >= 0]] = buzz[buzz >= 0]
    again = s.recent[who, rng.integers(0, RECENT, n)]
    back = (again >= 0) & (rng.random(n) < 0.4)
    items[back] = again[back]
    return items


def _after_purchase(rng, cat: Catalogue, s: _State, who: np.ndarray, items: np.ndarray) -> None:
    """A bought line piece makes its next piece wanted, in the interest the line belongs to; a
    bought product may make its accessory wanted."""
    lines = s.line_next[who]  # (n, 3)
    following = lines == items[:, None]
    nxt = cat.line_next[items]
    lines[following] = np.broadcast_to(nxt[:, None], lines.shape)[following]
    free = (lines < 0) & (s.interests[who] == cat.category[items][:, None]) & ~following.any(axis=1, keepdims=True)
    starts = (nxt >= 0) & free.any(axis=1) & (s.collector[who] | (rng.random(len(who)) < 0.3))
    lines[starts, np.argmax(free[starts], axis=1)] = nxt[starts]
    s.line_next[who] = lines
    accessory = cat.accessory[items]
    wants = (accessory >= 0) & (rng.random(len(who)) < 0.6)
    s.wanted_accessory[who[wants]] = accessory[wants]


def sample_items(rng, cat: Catalogue, categories: np.ndarray, now: np.ndarray) -> np.ndarray:
    """Zipf draws inside each given category among items already on sale at ``now``.

    The shifted per-category CDFs make one sorted array, so a draw is one searchsorted; a draw
    of an item not yet released is redrawn, and after three misses the category's best seller
    (always an old product) is taken.
    """
    items = np.searchsorted(cat.zipf_cdf, categories + rng.random(len(categories)), side="right")
    for _ in range(3):
        early = np.flatnonzero(cat.released[items] > now)
        if not len(early):
            return items
        items[early] = np.searchsorted(cat.zipf_cdf, categories[early] + rng.random(len(early)), side="right")
    early = cat.released[items] > now
    items[early] = np.searchsorted(cat.zipf_cdf, categories[early].astype(float), side="right")
    return items


def sample_brand_items(rng, cat: Catalogue, categories: np.ndarray, brands: np.ndarray, now: np.ndarray,
                       fallback: np.ndarray) -> np.ndarray:
    """Zipf draws among one brand's items of each category on sale at ``now``; ``fallback`` where
    the brand has none there (or the draw is not released yet)."""
    group = categories * len(BRANDS) + brands
    at = np.searchsorted(cat.brand_cdf, group + rng.random(len(group)), side="right")
    items = cat.by_brand[np.minimum(at, len(cat.by_brand) - 1)]
    usable = (cat.category[items] == categories) & (cat.brand[items] == brands) & (cat.released[items] <= now)
    return np.where(usable, items, fallback)


def buzzing_items(rng, cat: Catalogue, categories: np.ndarray, now: np.ndarray) -> np.ndarray:
    """One item of each given category launched or trending in the last weeks before ``now``, -1
    where none: a buzz is looked at less the older it is (a spike at its start that fades)."""
    if not len(cat.buzz_keys):
        return np.full(len(categories), -1)
    base = categories * Catalogue.KEY_SPAN
    low = np.searchsorted(cat.buzz_keys, base + now - _BUZZ_WINDOW, side="left")
    high = np.searchsorted(cat.buzz_keys, base + now, side="right")
    newest_first = rng.random(len(categories)) ** 2  # the latest launches are the ones shown most
    pick = np.clip(high - 1 - np.floor(newest_first * (high - low)).astype(np.int64), 0, len(cat.buzz_keys) - 1)
    age = np.where(high > low, base + now - cat.buzz_keys[pick], np.inf)  # no buzz in the category: never shown
    shown = rng.random(len(categories)) < np.exp(-age / _BUZZ_FADE)
    return np.where(shown, cat.buzz_by_category[pick], -1)


def _sample_from_cdf(rng: np.random.Generator, cdf_rows: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) cumulative distribution."""
    u = rng.random(len(cdf_rows))[:, None] * cdf_rows[:, -1:]
    return np.minimum((cdf_rows < u).sum(axis=1), cdf_rows.shape[1] - 1)


def _timestamps(rng, first_ts: float, span: float, users: np.ndarray, new_session: np.ndarray,
                n_users: int) -> np.ndarray:
    """Unix seconds: minutes apart inside a session, days between sessions, all inside the period."""
    session_gap = rng.lognormal(np.log(14 * DAY), 0.6, n_users)
    gaps = np.where(new_session, rng.exponential(1.0, len(users)) * session_gap[users],
                    rng.exponential(90.0, len(users)))
    first = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.zeros(0, int)
    gaps[first] = 0.0
    elapsed = np.cumsum(gaps)
    counts = np.diff(np.r_[first, len(users)])
    elapsed -= np.repeat(elapsed[first], counts)
    last = np.zeros(n_users)
    last[users[first]] = elapsed[np.r_[first[1:], len(users)] - 1] if len(users) else 0.0
    squeeze = np.minimum(1.0, span / np.maximum(last, 1.0))  # only histories longer than the period shrink
    start = rng.random(n_users) * np.maximum(span - last, 0.0)
    return first_ts + start[users] + elapsed * squeeze[users]


def _one_second_apart(ts: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Each user's events at least a second apart: two same views in one second would be an
    exact repeat, which an import skips as an overlapping export's."""
    if not len(ts):
        return ts
    position = np.arange(len(ts))
    group = np.cumsum(np.r_[True, users[1:] != users[:-1]])
    shifted = ts - position + group * (1 << 40)  # a running maximum that cannot cross users
    return np.maximum.accumulate(shifted) - group * (1 << 40) + position
