"""Deterministic demo data: reference rows, programme guide and COPY-ready bulk text (no DB, no clock)."""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate, combinations, compress
from math import prod
from operator import concat

UTC = UTC
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# A bulk chunk is big enough to amortise per-call overhead and small enough to stream.
CHUNK_PROFILES = 100_000
# Distinct (starts_at, expires_at) pairs subscriptions are drawn from: enough variety
# for time-driven cache flips (about one expiry a minute over the next day) at no per-row cost.
TIMING_VARIANTS = 16_384
# Share of profiles with 0, 1, 2 and 3 subscriptions: 1.5 subscriptions per profile on average.
SUBSCRIPTION_COUNT_WEIGHTS = (12, 40, 34, 14)


def stream(seed: int, purpose: str) -> random.Random:
    """An independent random stream per purpose, so changing one size leaves the rest unchanged."""
    return random.Random(f"prewarm-demo:{seed}:{purpose}")


# --- reference data -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegionSpec:
    id: int
    code: str
    name: str
    timezone: str
    weight: int  # share of profiles


@dataclass(frozen=True, slots=True)
class IspSpec:
    id: int
    code: str
    name: str
    regions: tuple[str, ...]
    weight: int  # market share inside each of its regions


@dataclass(frozen=True, slots=True)
class PlanSpec:
    id: int
    code: str
    name: str
    weight: int  # popularity among subscriptions


REGIONS = (
    RegionSpec(1, "EU-WEST", "Western Europe", "Europe/London", 20),
    RegionSpec(2, "EU-CENTRAL", "Central Europe", "Europe/Berlin", 20),
    RegionSpec(3, "US-EAST", "US East", "America/New_York", 22),
    RegionSpec(4, "US-WEST", "US West", "America/Los_Angeles", 15),
    RegionSpec(5, "APAC", "Asia Pacific", "Asia/Tokyo", 13),
    RegionSpec(6, "LATAM", "Latin America", "America/Sao_Paulo", 10),
)

ISPS = (
    IspSpec(1, "northwind", "Northwind Fibre", ("EU-WEST",), 5),
    IspSpec(2, "albion-net", "Albion Net", ("EU-WEST",), 3),
    IspSpec(3, "glasfaser-sued", "Glasfaser Süd", ("EU-CENTRAL",), 4),
    IspSpec(4, "donau-kabel", "Donau Kabel", ("EU-CENTRAL",), 3),
    IspSpec(5, "eurolink", "EuroLink", ("EU-WEST", "EU-CENTRAL"), 3),
    IspSpec(6, "atlantic-cable", "Atlantic Cable", ("US-EAST",), 5),
    IspSpec(7, "pacific-wave", "Pacific Wave", ("US-WEST",), 4),
    IspSpec(8, "starline", "Starline Broadband", ("US-EAST", "US-WEST"), 4),
    IspSpec(9, "sora-hikari", "ソラ光 Sora Hikari", ("APAC",), 5),
    IspSpec(10, "sakura-net", "Sakura Net", ("APAC",), 3),
    IspSpec(11, "fibra-nandu", "Fibra Ñandú", ("LATAM",), 4),
    IspSpec(12, "globalsat", "GlobalSat", ("EU-WEST", "US-EAST", "APAC", "LATAM"), 1),
)

PLANS = (
    PlanSpec(1, "basic", "Basic", 40),
    PlanSpec(2, "premium", "Premium", 18),
    PlanSpec(3, "sports", "Sports", 20),
    PlanSpec(4, "movies", "Movies", 14),
    PlanSpec(5, "kids", "Kids", 12),
    PlanSpec(6, "documentary", "Documentary", 8),
)


def isps_in(region_code: str) -> tuple[IspSpec, ...]:
    return tuple(i for i in ISPS if region_code in i.regions)


# --- channels and licences ------------------------------------------------------------

GENRE_WEIGHTS = {
    "entertainment": 20,
    "sports": 16,
    "movies": 14,
    "news": 12,
    "kids": 10,
    "documentary": 10,
    "drama": 10,
    "music": 8,
}

# (display name, ASCII code part)
CHANNEL_STEMS = (
    ("Nova", "nova"), ("Orbit", "orbit"), ("Lumière", "lumiere"), ("Café", "cafe"),
    ("Aurora", "aurora"), ("Fjord", "fjord"), ("Sol", "sol"), ("Ñandú", "nandu"),
    ("Zenit", "zenit"), ("Kirin", "kirin"), ("Halcyon", "halcyon"), ("Münster", "muenster"),
    ("Atlas", "atlas"), ("Vega", "vega"), ("Sakura", "sakura"), ("Boreal", "boreal"),
    ("Águila", "aguila"), ("Polaris", "polaris"), ("Riviera", "riviera"), ("Kōyō", "koyo"),
    ("Meridian", "meridian"), ("Tundra", "tundra"), ("Brisa", "brisa"), ("Élan", "elan"),
)

CHANNEL_SUFFIXES = {
    "entertainment": ("One", "Plus", "Max", "Showcase", "Unterhaltung"),
    "sports": ("Sport", "Sports Arena", "Fútbol", "スポーツ", "Sport Extra"),
    "movies": ("Cinema", "Kino", "Ciné", "Movies", "映画"),
    "news": ("News", "24", "Nachrichten", "Noticias", "ニュース"),
    "kids": ("Kids", "Junior", "キッズ", "Niños", "Kinder"),
    "documentary": ("Docs", "Discovery", "Histoire", "Natur", "Wissen"),
    "drama": ("Drama", "Séries", "Serien", "ドラマ", "Novelas"),
    "music": ("Music", "Musik", "Música", "Hits", "Jazz"),
}

# Channel genre -> (plans it is always in, plans it may also be in, chance to be free).
GENRE_PACKAGING = {
    "entertainment": (("basic",), ("premium",), 0.10),
    "sports": (("sports",), ("premium",), 0.0),
    "movies": (("movies",), ("premium",), 0.0),
    "news": ((), ("basic",), 0.70),
    "kids": (("kids",), ("basic",), 0.25),
    "documentary": (("documentary",), ("basic", "premium"), 0.05),
    "drama": (("basic",), ("premium",), 0.10),
    "music": ((), ("basic",), 0.50),
}


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    id: int
    code: str
    name: str
    number: int
    genre: str
    plan_ids: tuple[int, ...]  # empty: free


@dataclass(frozen=True, slots=True)
class LicenceSpec:
    id: int
    channel_id: int
    region_id: int
    isp_mode: str  # "any", "allow" or "deny"
    isp_ids: tuple[int, ...]
    valid_from: datetime | None
    valid_until: datetime | None


def make_channels(seed: int, count: int) -> list[ChannelSpec]:
    rng = stream(seed, "channels")
    plan_ids = {p.code: p.id for p in PLANS}
    genres, weights = list(GENRE_WEIGHTS), list(GENRE_WEIGHTS.values())
    seen_names: dict[str, int] = {}
    channels = []
    for i in range(1, count + 1):  # one channel at a time: a smaller catalogue is a prefix of a larger one
        genre = rng.choices(genres, weights)[0]
        stem, stem_code = rng.choice(CHANNEL_STEMS)
        name = f"{stem} {rng.choice(CHANNEL_SUFFIXES[genre])}"
        seen_names[name] = seen_names.get(name, 0) + 1
        if seen_names[name] > 1:
            name = f"{name} {seen_names[name]}"
        number = 100 + i
        always, maybe, free_chance = GENRE_PACKAGING[genre]
        if rng.random() < free_chance:
            plans: tuple[int, ...] = ()
        else:
            chosen = set(always) | {p for p in maybe if rng.random() < 0.5}
            if not chosen:
                chosen = {maybe[0]}
            plans = tuple(sorted(plan_ids[p] for p in chosen))
        code = f"{stem_code}-{genre[:5]}-{number}"
        channels.append(ChannelSpec(i, code, name, number, genre, plans))
    return channels


def make_licences(seed: int, channels: Sequence[ChannelSpec], now: datetime) -> list[LicenceSpec]:
    """Rights per channel and region: some channels are regional, some ISP-limited, some time-boxed."""
    rng = stream(seed, "licences")
    licences = []
    for channel in channels:
        home = rng.choice(REGIONS)
        regional = rng.random() < 0.15  # shown in its home region only
        for region in REGIONS:
            if region is not home and (regional or rng.random() >= 0.8):
                continue  # geoblocked here
            local_isps = isps_in(region.code)
            r = rng.random()
            if r < 0.12:
                mode = "allow"
                isp_ids = tuple(sorted(i.id for i in rng.sample(local_isps, rng.randint(1, min(2, len(local_isps))))))
            elif r < 0.24:
                mode = "deny"
                isp_ids = (rng.choice(local_isps).id,)
            else:
                mode, isp_ids = "any", ()
            valid_from = valid_until = None
            w = rng.random()
            if w < 0.04:  # rights start within the next hours
                valid_from = now + rng.randint(10, 6 * 60) * MINUTE
            elif w < 0.08:  # rights end within the next hours
                valid_until = now + rng.randint(10, 12 * 60) * MINUTE
            elif w < 0.14:  # a season: started a while ago, ends in weeks
                valid_from = now - rng.randint(1, 120) * DAY
                valid_until = now + rng.randint(7, 90) * DAY
            licences.append(
                LicenceSpec(len(licences) + 1, channel.id, region.id, mode, isp_ids, valid_from, valid_until)
            )
    return licences


# --- programme guide ------------------------------------------------------------------

DURATIONS = {  # minutes, all within 15..120
    "news": (15, 30, 30, 60),
    "sports": (60, 90, 105, 120),
    "movies": (90, 95, 100, 105, 110, 120),
    "kids": (15, 20, 25, 30),
    "documentary": (45, 50, 55, 60),
    "entertainment": (30, 45, 60),
    "music": (30, 60),
    "drama": (45, 50, 60),
}

AGE_RATINGS = {
    "news": ("0+",),
    "sports": ("0+",),
    "movies": ("6+", "12+", "12+", "16+", "18+"),
    "kids": ("0+", "0+", "6+"),
    "documentary": ("0+", "6+", "12+"),
    "entertainment": ("6+", "12+"),
    "music": ("0+",),
    "drama": ("12+", "16+"),
}

# Which programme genres air on a channel of a given genre (the first is the usual one).
CHANNEL_MIX = {
    "entertainment": ("entertainment", "entertainment", "drama", "music", "news", "movies"),
    "drama": ("drama", "drama", "drama", "movies"),
    "music": ("music", "music", "music", "entertainment"),
    "documentary": ("documentary", "documentary", "documentary", "news"),
}

PLACES = (
    "Montmartre", "München", "Kyoto 京都", "Cádiz", "A Coruña", "Reykjavík", "São Paulo",
    "Brooklyn", "Zürich", "Kraków", "Sevilla", "Osaka 大阪", "Malmö", "Curaçao", "Köln",
    "Ñuñoa", "Lisboa", "Tōkyō", "Genève", "Düsseldorf",
)
PEOPLE = (
    "a retired detective", "two sisters", "a young chef", "an exiled pianist", "the night shift",
    "a small-town mayor", "Inès and Mathéo", "Jürgen Müller", "Sofía Núñez", "Haruto 陽翔",
    "a team of rookies", "the Ødegaard family",
)
TEAMS = (
    "FC München", "Real Coruña", "Olympique Lyon", "Tokyo Verdy", "São Paulo FC", "Boca Juniors",
    "Atlético Ñuñoa", "Kashima Antlers", "Rovers United", "Borussia Köln", "Sporting Lisboa",
    "Brooklyn City", "Genève Servette", "Malmö FF",
)
COMPETITIONS = ("Champions Cup", "Copa Libertadores", "Bundesliga", "J1リーグ", "Premier Football", "Liga Española")
OTHER_SPORTS = (
    "Tennis: Roland-Garros Highlights", "Formula Replay: Grand Prix de Montréal", "Ski Alpin: Weltcup Kitzbühel",
    "Tour de France: Étape du jour", "大相撲 Sumo: Day Highlights", "Basketball Tonight", "Golf: The Open Review",
)
MOVIE_OPENERS = ("The Last Summer in", "Midnight in", "Return to", "Letters from", "Die Nacht von", "El Secreto de",
                 "Le Café de", "Lost in", "A Winter in")
JP_MOVIES = (
    "夏の終わり (End of Summer)", "星の旅人 (Star Traveller)", "東京の夜 (Tokyo Nights)", "桜の記憶 (Cherry Memory)"
)
NEWS_TITLES = ("Morning News", "Evening News", "Tagesschau kompakt", "Noticias 24h", "ニュース7", "World Report",
               "Business Today", "Le Journal", "Weather & Traffic", "España en Directo")
KIDS_TITLES = ("Captain Kiwi", "Mia and the Dragon", "ぼくらの冒険 (Our Adventure)", "Die kleine Raupe",
               "Los Pequeños Exploradores", "Robo-Café", "Pingüino Pablo", "Forest Friends")
DOC_SUBJECTS = ("Planet Oceans", "Die Alpen", "Café Culture", "Japan's Railways 日本の鉄道", "Secrets of the Nile",
                "Patagonia Salvaje", "Inside the Kitchen", "Les Châteaux de la Loire")
DOC_ANGLES = ("The Deep", "Ein Jahr", "From Bean to Cup", "Season of Change", "Hidden Lives", "A History")
SHOW_TITLES = ("The Late Café", "Quiz Night", "Bake Off: Österreich", "Comedy Club", "Talk of the Town",
               "Das große Backen", "¡Qué Noche!", "Home Makeover", "Stars on Ice")
DRAMA_TITLES = ("Harbour Street", "Kommissar Müller", "La Casa de Ñandú", "Hospital Nights", "Château Rouge",
                "Kyoto Station 京都駅", "The Crown Court", "Familie Schäfer")
MUSIC_TITLES = ("Top 40 Countdown", "Jazz at the Café", "J-POP Hits J-POPヒット", "Música Latina", "Unplugged Sessions",
                "Schlager Party", "Classic Rock Hour")
SERIES_GENRES = frozenset({"kids", "drama", "entertainment"})


def programme_title(rng: random.Random, genre: str) -> str:
    if genre == "sports":
        if rng.random() < 0.7:
            home, away = rng.sample(TEAMS, 2)
            return f"{rng.choice(COMPETITIONS)}: {home} vs {away}"
        return rng.choice(OTHER_SPORTS)
    if genre == "movies":
        if rng.random() < 0.2:
            return rng.choice(JP_MOVIES)
        return f"{rng.choice(MOVIE_OPENERS)} {rng.choice(PLACES)}"
    if genre == "news":
        return rng.choice(NEWS_TITLES)
    if genre == "documentary":
        return f"{rng.choice(DOC_SUBJECTS)}: {rng.choice(DOC_ANGLES)}"
    pool = {"kids": KIDS_TITLES, "drama": DRAMA_TITLES, "music": MUSIC_TITLES}.get(genre, SHOW_TITLES)
    return rng.choice(pool)


def programme_synopsis(rng: random.Random, genre: str, title: str) -> str:
    place = rng.choice(PLACES)
    who = rng.choice(PEOPLE)
    if genre == "sports":
        return f"Live coverage from {place}: {title}, with analysis, interviews and every highlight."
    if genre == "news":
        return f"Headlines, weather and the day's stories, with a special report from {place}."
    if genre == "movies":
        return f"In {place}, {who} must face a past that will not stay buried. A film about second chances."
    if genre == "kids":
        return f"{title}: {who} go on a new adventure in {place} and learn something about friendship."
    if genre == "documentary":
        return f"A journey through {place} in search of {title.split(':')[0].lower()}, told by the people who live it."
    if genre == "music":
        return f"The best tracks of the week, live sets and an interview recorded in {place}."
    if genre == "drama":
        return f"{who.capitalize()} in {place} uncovers a secret that changes everything."
    return f"{title} comes to {place}: guests, games and surprises, with {who} in the spotlight."


@dataclass(frozen=True, slots=True)
class ProgrammeSpec:
    channel_id: int
    starts_at: datetime
    ends_at: datetime
    title: str
    synopsis: str
    genre: str
    age_rating: str


def guide_window(now: datetime, days: int) -> tuple[datetime, datetime]:
    """A UTC span holding every local day from yesterday to today+days, in any time zone.

    Local today started less than 24 h ago, so local yesterday started less than 48 h ago
    and today+days ends within (days + 1) x 24 h; an hour either way allows for DST.
    """
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour - 49 * HOUR, hour + (days + 1) * DAY + 2 * HOUR


def channel_guide(seed: int, channel: ChannelSpec, start: datetime, end: datetime) -> Iterator[ProgrammeSpec]:
    """Back-to-back programmes on 5-minute boundaries from before `start` until past `end`."""
    rng = stream(seed, f"guide:{channel.code}")
    mix = CHANNEL_MIX.get(channel.genre, (channel.genre,))
    # A channel has a roster of shows it repeats, as real ones do; sport and films change each slot.
    roster = []
    for _ in range(rng.randint(6, 14)):
        genre = rng.choice(mix)
        title = programme_title(rng, genre)
        roster.append((genre, title, programme_synopsis(rng, genre, title), rng.choice(AGE_RATINGS[genre])))
    episodes: dict[str, int] = {}
    t = start - rng.randrange(0, 60, 5) * MINUTE
    while t < end:
        genre, title, synopsis, rating = rng.choice(roster)
        if genre in ("sports", "movies"):
            title = programme_title(rng, genre)
            synopsis = programme_synopsis(rng, genre, title)
            rating = rng.choice(AGE_RATINGS[genre])
        elif genre in SERIES_GENRES:
            episodes[title] = episodes.get(title, rng.randint(0, 40)) + 1
            n = episodes[title]
            title = f"{title} (S{n // 12 + 1} E{n % 12 + 1})"
        ends = t + rng.choice(DURATIONS[genre]) * MINUTE
        yield ProgrammeSpec(channel.id, t, ends, title, synopsis, genre, rating)
        t = ends


# --- COPY text ------------------------------------------------------------------------

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    """A value escaped for COPY's text format."""
    return value.translate(_COPY_ESCAPES)


def copy_time(value: datetime | None) -> str:
    if value is None:
        return "\\N"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00"


def programme_line(programme_id: int, p: ProgrammeSpec) -> str:
    """One row for COPY core_programme (id, channel_id, starts_at, ends_at, title, synopsis, genre, age_rating)."""
    return (
        f"{programme_id}\t{p.channel_id}\t{copy_time(p.starts_at)}\t{copy_time(p.ends_at)}\t"
        f"{copy_text(p.title)}\t{copy_text(p.synopsis)}\t{copy_text(p.genre)}\t{copy_text(p.age_rating)}\n"
    )


# --- profiles and subscriptions -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileKind:
    """Everything about a profile except its id and subscription dates."""

    region_id: int
    isp_id: int
    plan_ids: tuple[int, ...]  # distinct, ordered
    weight: float


def profile_kinds() -> tuple[ProfileKind, ...]:
    """Region x local ISP x plan combination, weighted by region size, ISP share and plan popularity."""
    combos_by_size = []
    for size in range(len(SUBSCRIPTION_COUNT_WEIGHTS)):
        combos = list(combinations(PLANS, size))
        weights = [prod(p.weight for p in c) for c in combos]
        total = sum(weights)
        share = SUBSCRIPTION_COUNT_WEIGHTS[size] / sum(SUBSCRIPTION_COUNT_WEIGHTS)
        combos_by_size.extend((tuple(p.id for p in c), share * w / total) for c, w in zip(combos, weights))
    region_total = sum(r.weight for r in REGIONS)
    kinds = []
    for region in REGIONS:
        local = isps_in(region.code)
        isp_total = sum(i.weight for i in local)
        for isp in local:
            pair = region.weight / region_total * isp.weight / isp_total
            kinds.extend(ProfileKind(region.id, isp.id, plans, pair * w) for plans, w in combos_by_size)
    return tuple(kinds)


def subscription_window(rng: random.Random, now: datetime) -> tuple[datetime, datetime | None]:
    """A plausible (starts_at, expires_at): mostly active, some ending soon, some future, some over."""
    r = rng.random()
    if r < 0.30:  # active, open-ended
        return now - rng.randint(3600, 720 * 86400) * SECOND, None
    if r < 0.60:  # active, renews months from now
        return now - rng.randint(3600, 365 * 86400) * SECOND, now + rng.randint(86400, 365 * 86400) * SECOND
    if r < 0.70:  # active, expires within the next day: the cache must flip on time
        return now - rng.randint(1, 365) * DAY, now + rng.randint(60, 86400) * SECOND
    if r < 0.78:  # starts later (some within hours)
        starts = now + rng.randint(600, 30 * 86400) * SECOND
        return starts, (None if rng.random() < 0.5 else starts + rng.choice((30, 90, 365)) * DAY)
    # already over (some only just)
    ends = now - rng.randint(60, 200 * 86400) * SECOND
    return ends - rng.randint(7, 365) * DAY, ends


class Population:
    """Profiles and their subscriptions as COPY text blocks drawn from seeded streams.

    Profile ids are 1..count. A profile's region, ISP and plans depend only on the seed
    and its id, not on `count`; subscription ids are numbered in the order written.
    """

    def __init__(self, *, seed: int, count: int, now: datetime, chunk: int = CHUNK_PROFILES):
        self.count = count
        self.chunk = chunk
        self.subscriptions_written = 0
        self._kind_rng = stream(seed, "profiles")
        slots = range(len(SUBSCRIPTION_COUNT_WEIGHTS) - 1)  # a profile's 1st, 2nd, 3rd subscription
        self._slot_rngs = [stream(seed, f"subscriptions:{slot}") for slot in slots]
        kinds = profile_kinds()
        self._kind_ids = list(range(len(kinds)))
        self._cum_weights = list(accumulate(k.weight for k in kinds))
        self._profile_tail = [f"\t{k.region_id}\t{k.isp_id}\n" for k in kinds]
        self._slot_has = [[len(k.plan_ids) > s for k in kinds] for s in slots]
        self._slot_plan = [[f"\t{k.plan_ids[s]}\t" if len(k.plan_ids) > s else "" for k in kinds] for s in slots]
        timing_rng = stream(seed, "subscription-windows")
        self._timings = []
        for _ in range(TIMING_VARIANTS):
            starts, expires = subscription_window(timing_rng, now)
            self._timings.append(f"{copy_time(starts)}\t{copy_time(expires)}\n")
        self._kinds: list[int] = []

    def _kinds_for(self, start: int, stop: int) -> list[int]:
        while len(self._kinds) < stop:
            n = min(self.chunk, self.count - len(self._kinds))
            self._kinds.extend(self._kind_rng.choices(self._kind_ids, cum_weights=self._cum_weights, k=n))
        return self._kinds[start:stop]

    def profile_blocks(self) -> Iterator[tuple[int, str]]:
        """(rows, text) for COPY core_profile (id, region_id, isp_id)."""
        for start in range(0, self.count, self.chunk):
            stop = min(start + self.chunk, self.count)
            kinds = self._kinds_for(start, stop)
            ids = map(str, range(start + 1, stop + 1))
            yield stop - start, "".join(map(concat, ids, map(self._profile_tail.__getitem__, kinds)))

    def subscription_blocks(self) -> Iterator[tuple[int, str]]:
        """(rows, text) for COPY core_subscription (id, profile_id, plan_id, starts_at, expires_at)."""
        line = "{}\t{}{}{}".format
        for start in range(0, self.count, self.chunk):
            stop = min(start + self.chunk, self.count)
            kinds = self._kinds_for(start, stop)
            parts, rows = [], 0
            for slot, rng in enumerate(self._slot_rngs):
                mask = list(map(self._slot_has[slot].__getitem__, kinds))
                profile_ids = list(compress(range(start + 1, stop + 1), mask))
                n = len(profile_ids)
                first = self.subscriptions_written + rows + 1
                plans = map(self._slot_plan[slot].__getitem__, compress(kinds, mask))
                timings = rng.choices(self._timings, k=n)
                parts.append("".join(map(line, range(first, first + n), profile_ids, plans, timings)))
                rows += n
            self.subscriptions_written += rows
            yield rows, "".join(parts)
