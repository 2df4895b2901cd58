"""Go's time.Time as templates see it: parsed from RFC 3339, printed by String(), and its methods
(Format with Go layouts, Unix, Year, Month, Day, ..., UTC)."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from fastsync.cli.gotemplate.values import BOOL, INT, INT64, STRING, GoType, Method, struct

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


@dataclass(frozen=True)
class GoTime:
    seconds: int           # Unix seconds
    nanos: int             # 0 .. 999999999
    offset: int            # seconds east of UTC
    zone: str              # abbreviation ("UTC"), "" for a fixed offset without a name

    @property
    def local(self) -> dt.datetime:
        """The wall clock in the time's own zone (naive)."""
        return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=self.seconds + self.offset)


_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")


def parse_rfc3339(text: str) -> GoTime:
    """time.Time's UnmarshalJSON (RFC 3339 with nanoseconds). A zero-offset time is UTC, as on a UTC host."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    nanos = int((m.group(7) or "0")[:9].ljust(9, "0"))
    zone = m.group(8)
    offset = 0 if zone in "Zz" else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    wall = dt.datetime(y, mo, d, h, mi, s) - dt.datetime(1970, 1, 1)
    seconds = wall.days * 86400 + wall.seconds - offset
    return GoTime(seconds, nanos, offset, "UTC" if offset == 0 else "")


def _offset(t: GoTime, sep: str, z: bool, seconds: bool = False, hours_only: bool = False) -> str:
    if z and t.offset == 0:
        return "Z"
    off = abs(t.offset)
    s = ("-" if t.offset < 0 else "+") + f"{off // 3600:02d}"
    if not hours_only:
        s += sep + f"{off % 3600 // 60:02d}"
    if seconds:
        s += sep + f"{off % 60:02d}"
    return s


_CHUNKS = [
    "January", "Jan", "Monday", "Mon", "MST",
    "Z07:00:00", "Z070000", "Z07:00", "Z0700", "Z07",
    "-07:00:00", "-070000", "-07:00", "-0700", "-07",
    "2006", "__2", "002", "_2", "15", "01", "02", "03", "04", "05", "06", "PM", "pm", "1", "2", "3", "4", "5",
]
_FRACTION = re.compile(r"[.,](0+|9+)(?!\d)")


def go_format(t: GoTime, layout: str) -> str:
    """time.Time.Format(layout) for Go's reference-time layouts."""
    w = t.local
    out = []
    i = 0
    while i < len(layout):
        m = _FRACTION.match(layout, i)
        if m:
            sep, digits = m.group(0)[0], m.group(1)
            frac = f"{t.nanos:09d}"[:len(digits)]
            if digits[0] == "9":
                frac = frac.rstrip("0")
            out.append(sep + frac if frac or digits[0] == "0" else "")
            i = m.end()
            continue
        for chunk in _CHUNKS:
            if layout.startswith(chunk, i):
                break
        else:
            out.append(layout[i])
            i += 1
            continue
        out.append(_chunk(t, w, chunk))
        i += len(chunk)
    return "".join(out)


def _chunk(t: GoTime, w: dt.datetime, c: str) -> str:
    hour12 = w.hour % 12 or 12
    table: dict[str, Any] = {
        "January": MONTHS[w.month - 1], "Jan": MONTHS[w.month - 1][:3], "Monday": DAYS[(w.weekday() + 1) % 7],
        "Mon": DAYS[(w.weekday() + 1) % 7][:3], "2006": f"{w.year:04d}", "06": f"{w.year % 100:02d}",
        "01": f"{w.month:02d}", "1": str(w.month), "02": f"{w.day:02d}", "_2": f"{w.day:2d}", "2": str(w.day),
        "__2": f"{w.timetuple().tm_yday:3d}", "002": f"{w.timetuple().tm_yday:03d}",
        "15": f"{w.hour:02d}", "03": f"{hour12:02d}", "3": str(hour12), "04": f"{w.minute:02d}", "4": str(w.minute),
        "05": f"{w.second:02d}", "5": str(w.second), "PM": "PM" if w.hour >= 12 else "AM",
        "pm": "pm" if w.hour >= 12 else "am",
    }
    if c in table:
        return table[c]
    if c == "MST":
        return t.zone or _offset(t, "", False)
    z = c.startswith("Z")
    return _offset(t, ":" if ":" in c else "", z, seconds=c.count("0") == 6 or c.count(":") == 2,
                   hours_only=c.endswith("07"))


def go_string(t: GoTime) -> str:
    """time.Time.String(): 2006-01-02 15:04:05.999999999 -0700 MST."""
    return go_format(t, "2006-01-02 15:04:05.999999999 -0700 MST")


MONTH = GoType("int", "time.Month", methods={"String": Method((), STRING, lambda m: MONTHS[m - 1])})
WEEKDAY = GoType("int", "time.Weekday", methods={"String": Method((), STRING, lambda d: DAYS[d])})


def _m(result: GoType, fn: Any, params: tuple = ()) -> Method:
    return Method(params, result, fn)


def _time_methods() -> dict[str, Method]:
    methods = {
        "String": _m(STRING, go_string),
        "Format": _m(STRING, go_format, (STRING,)),
        "Unix": _m(INT64, lambda t: t.seconds),
        "UnixMilli": _m(INT64, lambda t: t.seconds * 1000 + t.nanos // 1_000_000),
        "UnixMicro": _m(INT64, lambda t: t.seconds * 1_000_000 + t.nanos // 1000),
        "UnixNano": _m(INT64, lambda t: t.seconds * 1_000_000_000 + t.nanos),
        "Year": _m(INT, lambda t: t.local.year),
        "Month": _m(MONTH, lambda t: t.local.month),
        "Day": _m(INT, lambda t: t.local.day),
        "Hour": _m(INT, lambda t: t.local.hour),
        "Minute": _m(INT, lambda t: t.local.minute),
        "Second": _m(INT, lambda t: t.local.second),
        "Nanosecond": _m(INT, lambda t: t.nanos),
        "YearDay": _m(INT, lambda t: t.local.timetuple().tm_yday),
        "Weekday": _m(WEEKDAY, lambda t: (t.local.weekday() + 1) % 7),
        "IsZero": _m(BOOL, lambda t: t.seconds == -62135596800 and t.nanos == 0),
        "Date": Method((), None, lambda t: None, results=3),
        "Clock": Method((), None, lambda t: None, results=3),
        "Zone": Method((), None, lambda t: None, results=2),
    }
    return methods


TIME = struct("time.Time", [], _time_methods(), convert=parse_rfc3339)
# methods returning a time.Time need TIME itself
TIME.methods["UTC"] = _m(TIME, lambda t: GoTime(t.seconds, t.nanos, 0, "UTC"))  # type: ignore[index]
