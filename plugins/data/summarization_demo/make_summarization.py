"""Writes the summarization demo corpus: short structured reports and one-line summaries.

    python make_summarization.py          # rewrites train/validation/test.jsonl beside this file

Three kinds of report, each written from a random set of facts, with the sentences in
varying order and irrelevant details mixed in. The summary keeps the facts that matter,
rephrased, so a model has to pick, reorder and rewrite rather than copy a sentence:

* maintenance reports -> "<equipment> at <site> <was shut down / kept running / was
  repaired on site> after <fault>; <outcome>." (the action is told in several ways);
* weather bulletins -> "<Colour> warning for <region>: up to <n> mm of <rain/snow> and
  winds of <n> km/h on <day>." or "No warning for <region>: ..." when none was issued;
* match reports (the goals listed one by one, the final score stated) -> "<winner> beat
  <loser> <a>-<b> at <ground>, <scorer> scoring twice." / "... drew <a>-<a> ..." (who won is
  for the model to work out from the score).

Deterministic (fixed seed); names come from fixed lists shared by all splits.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20240611
SIZES = {"train": 2400, "validation": 200, "test": 200}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
PEOPLE = [
    "Alvarez", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Kowalski", "Brennan", "Haddad", "Novak", "Ferreira",
    "Osei", "Whitfield", "Rossi", "Petrov", "Nakamura", "Dubois", "Mensah", "Castillo", "Larsen", "Quinn",
]
INITIALS = list("ABCDEFGHJKLMNPRST")

# ------------------------------------------------------------------ maintenance
SITES = [
    "Northgate pumping station", "Riverside water plant", "Hillcrest depot", "Eastfield substation",
    "Harbour Road workshop", "Millbrook treatment works", "Westmoor wind farm", "Ashford rail yard",
    "Kingsley bottling plant", "Stonebridge reservoir", "Oakridge paper mill", "Fenwick cold store",
]
EQUIPMENT = ["pump", "compressor", "conveyor", "generator", "boiler", "turbine", "chiller", "press", "mixer", "crane"]
# fault as found in the report, fault as told in the summary, symptom that led to the inspection
FAULTS = [
    ("the bearing housing was cracked", "a cracked bearing housing", "unusual vibration"),
    ("a seal was leaking oil", "an oil leak", "oil on the floor"),
    ("the drive belt was worn through", "a worn drive belt", "a loud squeal"),
    ("the control board had burned out", "a burned-out control board", "repeated trips"),
    ("a cooling fan had seized", "a seized cooling fan", "high temperatures"),
    ("the main valve was stuck half open", "a stuck valve", "falling pressure"),
    ("two mounting bolts had sheared", "sheared mounting bolts", "knocking noises"),
    ("the motor winding was damaged by water", "water damage to the motor", "a smell of burning"),
]
# how the report tells the action, how the summary tells it
ACTIONS = [
    ("The {eq} was shut down and isolated until the part arrives.", "was shut down"),
    ("Operators switched the {eq} off and locked it out.", "was shut down"),
    ("The {eq} was left running at reduced load under close watch.", "was kept running at reduced load"),
    ("It was decided to keep the {eq} running at half speed for now.", "was kept running at reduced load"),
    ("The fault was repaired on site the same day.", "was repaired on site"),
    ("The team fixed the fault on site before the end of the shift.", "was repaired on site"),
]
WAITS = ["two days", "three days", "five days", "a week", "ten days", "two weeks"]
MAINTENANCE_FILLER = [
    "No one was hurt.",
    "The weather at the site was dry and mild.",
    "Production targets for the month are not affected.",
    "The next routine inspection is due in {month}.",
    "Photographs of the damage were added to the file.",
    "The site manager was informed by phone.",
    "A similar fault was last seen {n} years ago.",
    "Safety checks on the other machines found nothing unusual.",
]


def maintenance(rng: random.Random) -> tuple[str, str]:
    site = rng.choice(SITES)
    unit = f"{rng.choice(EQUIPMENT)} {rng.randint(1, 12)}"
    found, fault, symptom = rng.choice(FAULTS)
    action_text, action = rng.choice(ACTIONS)
    who = f"{rng.choice(INITIALS)}. {rng.choice(PEOPLE)}"
    day, date, month = rng.choice(DAYS), rng.randint(1, 28), rng.choice(MONTHS)
    wait = rng.choice(WAITS)
    if action == "was repaired on site":
        outcome_text = rng.choice(["Normal operation resumed the same evening.", "The unit was back in normal service by evening."])
        outcome = "normal service has resumed"
    else:
        outcome_text = rng.choice([
            f"A replacement part has been ordered and should arrive within {wait}.",
            f"The supplier expects to deliver the new part within {wait}.",
        ])
        outcome = f"a new part is expected within {wait}"
    facts = [
        f"On {day} {date} {month}, technician {who} inspected {unit} at the {site} after operators reported {symptom}.",
        f"The inspection found that {found}.",
        action_text.format(eq=unit.split()[0]),
        outcome_text,
    ]
    filler = [f.format(month=rng.choice(MONTHS), n=rng.randint(2, 9)) for f in rng.sample(MAINTENANCE_FILLER, rng.randint(1, 3))]
    body = facts[:2]
    rest = facts[2:] if rng.random() < 0.7 else facts[2:][::-1]
    for sentence in rest + filler:
        body.insert(rng.randint(2, len(body)), sentence)
    text = f"Maintenance report {rng.randint(1000, 9999)}. " + " ".join(body)
    summary = f"{unit.capitalize()} at the {site} {action} after {fault}; {outcome}."
    return text, summary


# ---------------------------------------------------------------------- weather
REGIONS = [
    "the northern coast", "the eastern hills", "the southern valleys", "the western islands", "the central plains",
    "the lake district", "the capital region", "the border uplands", "the river delta", "the high moors",
]
SYSTEMS = ["A band of low pressure", "A slow-moving front", "A deep Atlantic low", "A line of heavy showers", "A cold northerly airstream"]
WEATHER_FILLER = [
    "Yesterday was mostly dry with sunny spells.",
    "Pollen levels will be low.",
    "Sunrise is at {h}:{m:02d}.",
    "The outlook for next week is more settled.",
    "Visibility will be good away from the showers.",
    "Overnight lows will be close to {t} degrees.",  # t: below the day's range
]


def weather(rng: random.Random) -> tuple[str, str]:
    region = rng.choice(REGIONS)
    day = rng.choice(DAYS)
    snow = rng.random() < 0.3
    kind = "snow" if snow else "rain"
    amount = rng.randint(5, 30) if snow else rng.randint(10, 90)
    unit = "cm" if snow else "mm"
    wind = rng.randint(30, 120)
    low = rng.randint(-8, 2) if snow else rng.randint(3, 12)
    high = low + rng.randint(2, 8)
    severity = amount / (30 if snow else 90) + wind / 120
    warning = "red" if severity > 1.5 else "amber" if severity > 1.1 else "yellow" if severity > 0.8 else None
    facts = [
        f"{rng.choice(SYSTEMS)} will bring {kind} to {region} on {day}, starting around {rng.randint(1, 11)} {rng.choice(['am', 'pm'])}.",
        f"Up to {amount} {unit} of {kind} could fall by the end of the day.",
        f"Winds will gust up to {wind} km/h, strongest on high ground.",
        f"Temperatures will stay between {low} and {high} degrees.",
    ]
    if warning:
        article = "an" if warning == "amber" else "a"
        facts.append(f"The weather service has issued {article} {warning} warning for {region}.")
        facts.append(rng.choice(["Travel may be disrupted.", "People are advised to avoid unnecessary journeys.", "Check local news before setting out."]))
    else:
        facts.append("No weather warning is in force.")
    filler = [f.format(h=rng.randint(5, 8), m=rng.randint(0, 59), t=low - rng.randint(1, 4)) for f in rng.sample(WEATHER_FILLER, rng.randint(1, 2))]
    body = facts[:1]
    for sentence in facts[1:] + filler:
        body.insert(rng.randint(1, len(body)), sentence)
    text = f"Weather bulletin for {region}, issued {rng.choice(DAYS)} morning. " + " ".join(body)
    head = f"{warning.capitalize()} warning" if warning else "No warning"
    summary = f"{head} for {region}: up to {amount} {unit} of {kind} and winds of {wind} km/h on {day}."
    return text, summary


# ----------------------------------------------------------------------- sport
TEAMS = [
    "Harbour Lions", "Mill Town Foxes", "Eastbank Rovers", "Castle Hill United", "Redbridge Athletic", "Northfield Wanderers",
    "Lakeside City", "Granite Rangers", "Old Quay Albion", "Westvale Town", "Brookside Celtic", "Summit FC",
]
GROUNDS = ["Harbour Park", "the Mill Ground", "Eastbank Stadium", "Castle Lane", "the Riverside Arena", "Northfield Road", "Lakeside Park", "the Granite Bowl"]


def match(rng: random.Random) -> tuple[str, str]:
    home, away = rng.sample(TEAMS, 2)
    ground = rng.choice(GROUNDS)
    day = rng.choice(DAYS)
    home_goals, away_goals = rng.choice([0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4]), rng.choice([0, 0, 1, 1, 1, 2, 2, 3])
    players = {home: rng.sample(PEOPLE, 3), away: rng.sample(PEOPLE, 3)}
    goals = []
    for team, count in ((home, home_goals), (away, away_goals)):
        for _ in range(count):
            goals.append((rng.randint(2, 90), team, rng.choice(players[team][:2])))
    goals.sort()
    sentences = [f"{home} hosted {away} at {ground} on {day}."]
    for minute, team, player in goals:
        sentences.append(rng.choice([
            f"{player} scored for {team} in minute {minute}.",
            f"In minute {minute}, {player} found the net for {team}.",
        ]))
    if not goals:
        sentences.append("Neither side managed a goal.")
    sentences.append(f"The game ended {home_goals}-{away_goals}.")
    filler = [
        f"The crowd of {rng.randint(2, 40)},{rng.randint(0, 999):03d} saw {rng.choice(['a lively', 'a scrappy', 'an open', 'a tense'])} game.",
        f"The referee showed {rng.randint(0, 6)} yellow cards.",
        f"{rng.choice(PEOPLE)} of {rng.choice([home, away])} limped off with an injury.",
        "Rain fell for much of the second half.",
    ]
    for sentence in rng.sample(filler, rng.randint(1, 2)):
        sentences.insert(rng.randint(1, len(sentences)), sentence)
    text = " ".join(sentences)
    if home_goals == away_goals:
        summary = f"{home} and {away} drew {home_goals}-{away_goals} at {ground}."
    else:
        winner, loser = (home, away) if home_goals > away_goals else (away, home)
        high, low = max(home_goals, away_goals), min(home_goals, away_goals)
        summary = f"{winner} beat {loser} {high}-{low} at {ground}."
        scorers = [p for _, team, p in goals if team == winner]
        top = max(set(scorers), key=lambda p: (scorers.count(p), p))
        if scorers.count(top) >= 2:
            summary = summary[:-1] + f", {top} scoring {'twice' if scorers.count(top) == 2 else 'a hat-trick'}."
    return text, summary


def main() -> None:
    rng = random.Random(SEED)
    makers = [maintenance, weather, match]
    seen: set[str] = set()
    here = Path(__file__).resolve().parent
    for split, size in SIZES.items():
        rows = []
        while len(rows) < size:
            text, summary = makers[len(rows) % 3](rng)
            if text in seen:
                continue
            seen.add(text)
            rows.append({"text": text, "target": summary})
        rng.shuffle(rows)
        with open(here / f"{split}.jsonl", "w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
