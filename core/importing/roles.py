"""Which column plays which role, guessed from common names (and where names say nothing, from values
that leave no doubt) or, without a header, from values.

Roles per kind of file:
  events: user, item (required), time, event, value, time_of_day (the time of day, where the time
          column holds dates alone: exports that write the two apart)
  items:  item (required), title, categories, plus one-hot category flag columns
  users:  user (required)
Every column of an items or users file that has no role becomes a profile attribute.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

KIND_ROLES = {
    "events": ("user", "item", "time", "time_of_day", "event", "value"),
    "items": ("item", "title", "categories"),
    "users": ("user",),
}
ALL_ROLES = list(dict.fromkeys(role for roles in KIND_ROLES.values() for role in roles))
REQUIRED_ROLES = {"events": ("user", "item"), "items": ("item",), "users": ("user",)}

# Normalised column names (lower case, letters and digits only) that reveal a role.
_ALIASES = {
    # Public logs' own names too: Amazon reviews' reviewerID, Olist's customer_unique_id, a session-based log's
    # session_id (each session one shopper), an order export's customer_email; Yelp's business_id, music's
    # track_id, Steam's app_id.
    "user": ("userid", "user", "customerid", "customer", "visitorid", "clientid", "uid", "memberid", "accountid",
             "shopperid", "userpseudoid", "reviewerid", "customeruniqueid", "buyerid", "profileid", "sessionid",
             "customeremail", "email", "useremail", "buyeremail"),
    "item": ("itemid", "item", "movieid", "productid", "sku", "product", "asin", "articleid", "iid", "productcode",
             "businessid", "trackid", "songid", "bookid", "isbn", "gameid", "appid", "videoid", "recipeid",
             "listingid", "venueid", "contentid", "offerid"),
    "time": ("timestamp", "time", "date", "step", "ts", "datetime", "eventtime", "created", "createdat"),
    "event": ("event", "eventtype", "action", "type", "behavior", "behaviour", "interaction", "eventname"),
    "value": ("rating", "value", "price", "amount", "score", "quantity", "qty", "stars", "bookrating"),
    "title": ("title", "name", "itemname", "productname", "movietitle"),
    "categories": ("categories", "category", "genres", "genre", "tags"),
}
# Parts of a column's name that say it holds a clock (by values only: see _time_column_by_values).
_TIME_WORDS = ("time", "date", "zeit", "datum")
# Time columns whose numbers are a position in the user's history, not a clock.
ORDER_NAMES = ("step", "order", "position", "pos", "seq", "sequence", "index", "rank")
# Words after an ISO time that name UTC: "... UTC" is BigQuery's CSV export of a TIMESTAMP column.
UTC_WORDS = "UTC|GMT"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"
                       r"(Z|[+-]\d{2}:?\d{2}| (" + UTC_WORDS + "))?$")
# A unix time in seconds this small would be before 1973: such numbers are an order instead.
UNIX_MIN = 1e8
# A date written as digits, as warehouses export it: YYYYMMDD, or YYYYMMDDhhmmss (years 1900-2099).
DIGIT_DATE = r"^(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(\d{6})?$"
# A day-first dotted date, as spreadsheets write them in Germany, Russia...: 01.03.2025 10:15(:00).
DOTTED_DATE = r"^\s*\d{1,2}\.\d{1,2}\.\d{4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*$"
# A date written with slashes, month first (US: 12/31/2025) or day first (31/12/2025), its year in four digits
# or two (3/1/25), with an optional time of day (12/31/2025 2:05 PM). Which comes first is decided per file
# from its dates (``times.TimeColumn``).
SLASHED_DATE = (r"^\s*\d{1,2}/\d{1,2}/(\d{4}|\d{2})([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(\s*[AaPp]\.?[Mm]\.?)?)?\s*$")
# A time of day without its date, as exports that keep the two apart write it: 14:05, 9:15:30.25, 2:05 PM.
TIME_OF_DAY = (r"^\s*(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}(?:\.\d+)?))?"
               r"\s*(?P<half>[AaPp]\.?[Mm]\.?)?\s*$")
# How exports write a missing value (pandas' defaults, in lower case): an id written so names nobody.
MISSING_MARKERS = ("na", "n/a", "nan", "null", "none", "<na>", "#n/a", "-nan")
PAIRED_SHARE = 0.5  # more than this of a preview's cells written as dates and as times of day: two columns, one time


def normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def known_alias(name: str) -> bool:
    return any(normalise(name) in names for names in _ALIASES.values())


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def looks_like_time(values: Sequence[str]) -> bool:
    """Every value is an ISO date/time, a date written as digits (20250301), day-first with dots
    (01.03.2025) or with slashes (12/31/2025, 31/12/2025), or a unix time (seconds or finer)."""
    present = [v.strip() for v in values if v.strip()]
    return bool(present) and all(
        _written_date(v) or re.match(DIGIT_DATE, v) or (is_number(v) and float(v) >= UNIX_MIN) for v in present)


def guess_roles(columns: Sequence[str], preview: Sequence[Sequence[str]], has_header: bool) -> dict[str, str]:
    """role -> column for every role we can recognise, whatever the kind of file."""
    if not has_header:
        return _roles_from_values(columns, preview)
    roles = _roles_from_names(columns, preview)
    if "time" not in roles:
        time = _time_column_by_values(columns, preview, set(roles.values()))
        if time is not None:
            roles["time"] = time
    _pair_date_with_time_of_day(columns, preview, roles)
    if "categories" not in roles:
        lists = _category_list_column(columns, preview, set(roles.values()))
        if lists is not None:
            roles["categories"] = lists
    return roles


def _time_column_by_values(columns: Sequence[str], preview: Sequence[Sequence[str]], taken: set[str]) -> Optional[str]:
    """A time column whose name no alias knows ("visited_at", "event_timestamp", "zeitpunkt"): a free
    column of ISO-8601 dates, or of clock numbers under a name that says time or date; the first
    that tells the time of day, else the first of days only (an export's event_date beside its
    event_timestamp would put a day's events in file order). Left unread, the log would be
    imported in file order with its times silently lost. Numbers under another name are not
    taken: a ten-digit order id reads as a clock as well."""
    found: list[tuple[bool, str]] = []
    for i, column in enumerate(columns):
        cells = _cells(preview, i)
        if column in taken or not cells:
            continue
        named_for_time = any(word in normalise(column) for word in _TIME_WORDS)
        if all(_ISO_DATE.match(cell) for cell in cells) or (named_for_time and looks_like_time(cells)):
            found.append((all(_is_day(cell) for cell in cells), column))
    return min(found, key=lambda days_column: days_column[0])[1] if found else None


def _is_day(cell: str) -> bool:
    """A date without a time of day: 2025-03-01, 20250301, 01.03.2025, 03/01/2025 or 3/1/25."""
    return bool(re.match(r"^\d{4}-\d{2}-\d{2}$", cell) or (len(cell) == 8 and re.match(DIGIT_DATE, cell))
                or re.match(r"^\d{1,2}\.\d{1,2}\.\d{4}$", cell) or re.match(r"^\d{1,2}/\d{1,2}/(\d{4}|\d{2})$", cell))


def _pair_date_with_time_of_day(columns: Sequence[str], preview: Sequence[Sequence[str]], roles: dict[str, str]) -> None:
    """An export that writes each event's date and time of day in two columns (order_date, order_time): the
    time role takes the dates and ``time_of_day`` the times of day. Read alone, the dates put each day's
    events in file order, and a "time" column of times of day (14:05) had every row refused."""
    cells = {column: _cells(preview, i) for i, column in enumerate(columns)}
    taken = set(roles.values())

    def mostly(column: str, written) -> bool:  # a few bad rows are refused at import, naming them
        return bool(cells[column]) and sum(map(written, cells[column])) > PAIRED_SHARE * len(cells[column])

    def dates(column: str) -> bool:
        return mostly(column, _is_day)

    def times_of_day(column: str) -> bool:
        return mostly(column, lambda c: re.match(TIME_OF_DAY, c) is not None)

    time = roles.get("time")
    if time is None:
        return
    if times_of_day(time):
        date = next((c for c in columns if c not in taken and dates(c)), None)
        if date is not None:
            roles["time"], roles["time_of_day"] = date, time
    elif dates(time):
        clock = next((c for c in columns if c not in taken and times_of_day(c)), None)
        if clock is not None:
            roles["time_of_day"] = clock


def _category_list_column(columns: Sequence[str], preview: Sequence[Sequence[str]], taken: set[str]) -> Optional[str]:
    """The one free column of "A|B" lists, whose name no alias knows ("rubrik", "aisle"): an items
    file's categories. None where no column or more than one looks so."""
    lists = [column for i, column in enumerate(columns) if column not in taken and _joined_lists(_cells(preview, i))]
    return lists[0] if len(lists) == 1 else None


def _cells(preview: Sequence[Sequence[str]], i: int) -> list[str]:
    """The non-empty cells of column ``i`` in the preview's rows, trimmed."""
    return [row[i].strip() for row in preview if i < len(row) and row[i].strip()]


def _joined_lists(values: Sequence[str]) -> bool:
    """A third of the cells or more join words with "|", and the words come back (twice each on
    average): category lists, not text that happens to hold a "|"."""
    if not values:
        return False
    joined = [v for v in values if "|" in v]
    words = [w.strip() for v in values for w in v.split("|")]
    return len(joined) * 3 >= len(values) and len(set(words)) * 2 <= len(words)


def _roles_from_names(columns: Sequence[str], preview: Sequence[Sequence[str]]) -> dict[str, str]:
    """Earlier aliases are stronger ("user_id" beats "user" when a file has both), but a column mostly
    empty or written NA gives way to a later one that is not: Diginetica's userId is NA for most rows,
    and its sessionId names the shopper."""
    roles: dict[str, str] = {}
    for role, names in _ALIASES.items():
        named = [i for alias in names for i, c in enumerate(columns) if normalise(c) == alias
                 and c not in roles.values()]
        filled = [i for i in named if not _mostly_missing([row[i] for row in preview if i < len(row)])]
        if named:
            roles[role] = columns[(filled or named)[0]]
    return roles


def _mostly_missing(cells: Sequence[str]) -> bool:
    return sum(not cell.strip() or cell.strip().lower() in MISSING_MARKERS for cell in cells) > len(cells) / 2


def _roles_from_values(columns: Sequence[str], preview: Sequence[Sequence[str]]) -> dict[str, str]:
    """Without a header: a column of written dates is the time wherever it stands (YooChoose's clicks
    put it second: session, time, item); the first two other columns are the user (or item) and the
    item; otherwise a later column of clock numbers is the time (a number in the first two reads as an
    id). Then the first other numeric column is the value, and the first mostly-text column the title
    (items) or event type (events)."""
    values = {c: [row[i] for row in preview if i < len(row)] for i, c in enumerate(columns)}
    written = next((c for c in columns if _written_dates(values[c])), None)
    ids = [c for c in columns if c != written][:2]
    roles = dict(zip(("user", "item"), ids))
    rest = [c for c in columns if c not in ids]
    time = written or next((c for c in rest if looks_like_time(values[c])), None)
    if time:
        roles["time"] = time
        rest.remove(time)
    numeric = [c for c in rest if values[c] and all(is_number(v) for v in values[c] if v.strip())]
    if numeric:
        roles["value"] = numeric[0]
    text = [c for c in columns[1:] if c != time and values[c]
            and sum(not is_number(v) for v in values[c]) > len(values[c]) / 2]
    if text:
        roles["title"] = text[0]
        if text[0] in rest:
            roles["event"] = text[0]
    return roles


def _written_dates(values: Sequence[str]) -> bool:
    """Every value a date written with separators: never an id, unlike a number."""
    present = [v.strip() for v in values if v.strip()]
    return bool(present) and all(map(_written_date, present))


def _written_date(cell: str) -> bool:
    """ISO (2025-03-01T10:15), dotted (01.03.2025) or slashed (03/01/2025)."""
    return bool(_ISO_DATE.match(cell) or re.match(DOTTED_DATE, cell) or re.match(SLASHED_DATE, cell))


def roles_for_kind(kind: str, guessed: dict[str, str], has_header: bool, columns: Sequence[str],
                   explicit: dict[str, str]) -> dict[str, str]:
    """The roles one file uses: explicit ones (``role`` or ``kind.role`` keys) over guesses."""
    roles = {r: c for r, c in guessed.items() if r in KIND_ROLES[kind]}
    own_id = {"items": "item", "users": "user"}.get(kind)
    if has_header and own_id and own_id not in roles:
        # A catalogue or customer export's own id column is often plain "id" (an event's "id" is the event's).
        plain = next((c for c in columns if normalise(c) == "id" and c not in roles.values()), None)
        if plain is not None:
            roles[own_id] = plain
    if not has_header and kind in ("items", "users"):
        # A headerless profile file starts with its own id; nothing else is an event column.
        roles = {"item" if kind == "items" else "user": columns[0]}
        if kind == "items" and "title" in guessed and guessed["title"] != columns[0]:
            roles["title"] = guessed["title"]
    named = set()
    for key, column in explicit.items():
        scope, _, role = key.rpartition(".")
        if role in KIND_ROLES[kind] and scope in ("", kind):
            roles = {r: c for r, c in roles.items() if c != column}
            roles[role] = column
            named.add(role)
    if "time" in named and "time_of_day" not in named:
        roles.pop("time_of_day", None)  # a time column named by hand says the time of day itself
    return roles


def flag_columns(columns: Sequence[str], preview: Sequence[Sequence[str]], taken: set[str]) -> list[str]:
    """The trailing run (two or more) of columns holding only 0/1: one-hot category flags."""
    flags: list[str] = []
    for i in range(len(columns) - 1, -1, -1):
        cells = [row[i].strip() for row in preview if i < len(row)]
        if columns[i] in taken or not cells or any(c not in ("0", "1") for c in cells):
            break
        flags.insert(0, columns[i])
    return flags if len(flags) >= 2 else []


def flag_names(items_path: Path, flags: list[str]) -> list[str]:
    """Names for flag columns from a side file ``<stem>.genre`` of ``name|index`` lines
    (the MovieLens convention), when it has exactly one name per flag; else the column names."""
    side = items_path.with_suffix(".genre")
    if not side.is_file():
        return list(flags)
    names: dict[int, str] = {}
    for line in side.read_text(encoding="latin-1").splitlines():
        name, sep, index = line.rpartition("|")
        if sep and index.strip().isdigit():
            names[int(index)] = name.strip()
    if sorted(names) != list(range(len(flags))):
        return list(flags)
    return [names[i] for i in range(len(flags))]


def missing_role_reason(kind: str, role: str, columns: Sequence[str]) -> str:
    """Why a file lacks a required role, naming the ``--map`` that fixes it: aimed at this kind of file
    for an items or users file, since a plain ``--map item=...`` would rename the events' item column too."""
    key = role if kind == "events" else f"{kind}.{role}"
    return f"no {role} column in this {kind} file (columns: {', '.join(columns)}); name it with --map {key}=COLUMN"


def unknown_role_reason(key: str) -> Optional[str]:
    """Why ``key`` (``role`` or ``kind.role``, as ``ImportOptions.roles`` takes it) aims at no role of any
    file, else None: a misspelt role was ignored without a word, its column imported as an attribute."""
    scope, _, role = key.rpartition(".")
    if scope and scope not in KIND_ROLES:
        having = [f"{kind}.{role}" for kind in KIND_ROLES if role in KIND_ROLES[kind]] or [role]
        return f"{scope!r} is no kind of file (events, items or users): write {' or '.join(having)}"
    kinds = [scope] if scope else list(KIND_ROLES)
    if any(role in KIND_ROLES[kind] for kind in kinds):
        return None
    known = sorted({r for kind in kinds for r in KIND_ROLES[kind]}, key=ALL_ROLES.index)
    where = f"the {scope} file" if scope else "any file"
    return f"{role!r} is no role of {where}; the roles are {', '.join(known)} (other columns are kept as they are)"


def unaimed_map_hint(kind: str, role: str, column: str) -> Optional[str]:
    """For a ``--map ROLE=COLUMN`` (no kind) whose column one file of the import lacks: it applies to
    every file that has the role, and the column is most likely another one's. None when no other
    kind of file has the role (then the map can only have meant this file)."""
    others = [f"--map {other}.{role}={column}" for other in KIND_ROLES if other != kind and role in KIND_ROLES[other]]
    if not others:
        return None
    return f"A --map without a kind applies to every file; for one file only, write {' or '.join(others)}."
