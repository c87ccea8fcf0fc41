"""Writes the translation demo corpus: English sentences and their French translations.

    python make_translation.py            # rewrites train/validation/test.jsonl beside this file

A small grammar of real French, generated with its English source so every pair is a
correct translation. What a model has to learn beyond word-for-word lookup:

* word order: colour and most other adjectives follow the noun (``the black cat`` ->
  ``le chat noir``) while petit/grand/joli/vieux/jeune precede it (``the small black cat``
  -> ``le petit chat noir``); object pronouns move before the verb (``she sees him`` ->
  ``elle le voit``); negation wraps the verb (``does not eat`` -> ``ne mange pas``);
* agreement: articles, possessives and adjectives agree with the noun's gender and
  number (``the white houses`` -> ``les maisons blanches``), possessives with the thing
  owned, not the owner (``his car`` -> ``sa voiture``); verbs agree with the subject
  (``we eat`` -> ``nous mangeons``, ``the cat and the dog eat`` -> ``le chat et le chien
  mangent``); predicate adjectives agree with the subject (``she is tired`` -> ``elle
  est fatiguée``);
* elision and contraction: ``l'arbre``, ``j'aime``, ``n'a pas``, ``le vieil homme``,
  ``à + le = au``, ``de + les = des``, ``pas de`` / ``pas d'`` after a negated verb.

Deterministic (fixed seed); the splits share no English sentence.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20240607
SIZES = {"train": 3000, "validation": 300, "test": 300}
VOWELS = tuple("aeiouhéâœ")

ALL_KINDS = {"animal", "person", "food", "thing", "place"}

# english singular, english plural, french singular, french plural, gender, kind
NOUNS = [
    ("cat", "cats", "chat", "chats", "m", "animal"),
    ("dog", "dogs", "chien", "chiens", "m", "animal"),
    ("bird", "birds", "oiseau", "oiseaux", "m", "animal"),
    ("horse", "horses", "cheval", "chevaux", "m", "animal"),
    ("boy", "boys", "garçon", "garçons", "m", "person"),
    ("girl", "girls", "fille", "filles", "f", "person"),
    ("woman", "women", "femme", "femmes", "f", "person"),
    ("man", "men", "homme", "hommes", "m", "person"),
    ("friend", "friends", "ami", "amis", "m", "person"),
    ("teacher", "teachers", "professeur", "professeurs", "m", "person"),
    ("apple", "apples", "pomme", "pommes", "f", "food"),
    ("cake", "cakes", "gâteau", "gâteaux", "m", "food"),
    ("egg", "eggs", "œuf", "œufs", "m", "food"),
    ("book", "books", "livre", "livres", "m", "thing"),
    ("letter", "letters", "lettre", "lettres", "f", "thing"),
    ("ball", "balls", "ballon", "ballons", "m", "thing"),
    ("hat", "hats", "chapeau", "chapeaux", "m", "thing"),
    ("shirt", "shirts", "chemise", "chemises", "f", "thing"),
    ("box", "boxes", "boîte", "boîtes", "f", "thing"),
    ("flower", "flowers", "fleur", "fleurs", "f", "thing"),
    ("car", "cars", "voiture", "voitures", "f", "place"),
    ("house", "houses", "maison", "maisons", "f", "place"),
    ("table", "tables", "table", "tables", "f", "place"),
    ("tree", "trees", "arbre", "arbres", "m", "place"),
    ("garden", "gardens", "jardin", "jardins", "m", "place"),
    ("river", "rivers", "rivière", "rivières", "f", "place"),
    ("street", "streets", "rue", "rues", "f", "place"),
]
NOUN = {n[0]: n for n in NOUNS}

# english, m sg, f sg, m pl, f pl, before the noun?, m sg before a vowel, for what
ADJECTIVES = [
    ("black", "noir", "noire", "noirs", "noires", False, None, {"animal", "thing", "place"}),
    ("white", "blanc", "blanche", "blancs", "blanches", False, None, {"animal", "thing", "place"}),
    ("green", "vert", "verte", "verts", "vertes", False, None, {"thing", "place", "food"}),
    ("blue", "bleu", "bleue", "bleus", "bleues", False, None, {"thing", "place"}),
    ("red", "rouge", "rouge", "rouges", "rouges", False, None, {"thing", "place", "food"}),
    ("heavy", "lourd", "lourde", "lourds", "lourdes", False, None, {"thing", "food"}),
    ("round", "rond", "ronde", "ronds", "rondes", False, None, {"thing", "food"}),
    ("happy", "heureux", "heureuse", "heureux", "heureuses", False, None, {"animal", "person"}),
    ("tired", "fatigué", "fatiguée", "fatigués", "fatiguées", False, None, {"animal", "person"}),
    ("small", "petit", "petite", "petits", "petites", True, None, ALL_KINDS),
    ("big", "grand", "grande", "grands", "grandes", True, None, ALL_KINDS),
    ("pretty", "joli", "jolie", "jolis", "jolies", True, None, ALL_KINDS),
    ("old", "vieux", "vieille", "vieux", "vieilles", True, "vieil", ALL_KINDS),
    ("young", "jeune", "jeune", "jeunes", "jeunes", True, None, {"animal", "person"}),
]

# english base, english 3sg, french je / il / nous / ils, objects it takes
VERBS = [
    ("eat", "eats", "mange", "mange", "mangeons", "mangent", "food"),
    ("see", "sees", "vois", "voit", "voyons", "voient", "any"),
    ("like", "likes", "aime", "aime", "aimons", "aiment", "any"),
    ("carry", "carries", "porte", "porte", "portons", "portent", "small"),
    ("find", "finds", "trouve", "trouve", "trouvons", "trouvent", "any"),
    ("watch", "watches", "regarde", "regarde", "regardons", "regardent", "any"),
    ("want", "wants", "veux", "veut", "voulons", "veulent", "small"),
    ("have", "has", "ai", "a", "avons", "ont", "any"),
    ("wash", "washes", "lave", "lave", "lavons", "lavent", "washable"),
    ("open", "opens", "ouvre", "ouvre", "ouvrons", "ouvrent", "openable"),
]
INTRANSITIVE = [
    ("sleep", "sleeps", "dors", "dort", "dormons", "dorment"),
    ("run", "runs", "cours", "court", "courons", "courent"),
    ("sing", "sings", "chante", "chante", "chantons", "chantent"),
    ("play", "plays", "joue", "joue", "jouons", "jouent"),
]
GIVE = ("give", "gives", "donne", "donne", "donnons", "donnent")
# what each verb takes as object: noun kinds, or noun names
OBJECT_KINDS = {
    "food": {"food"},
    "small": {"food", "thing"},
    "washable": {"shirt", "hat", "ball", "car", "table", "dog", "horse", "cat"},
    "openable": {"book", "letter", "box", "car", "house"},
    "any": ALL_KINDS,
}
# english, french, what it goes with
PREPOSITIONS = [
    ("in", "dans", {"car", "house", "garden", "river", "box"}),
    ("on", "sur", {"table", "street", "box"}),
    ("under", "sous", {"table", "tree", "car"}),
    ("near", "près de", {"car", "house", "table", "tree", "garden", "river"}),
]
# subject pronouns: english, french, person (1s, 3s, 1p), gender
PRONOUNS = [("I", "je", "1s", None), ("he", "il", "3s", "m"), ("she", "elle", "3s", "f"), ("we", "nous", "1p", None)]
# object pronouns: english, french, gender, plural
OBJECT_PRONOUNS = [("him", "le"), ("her", "la"), ("them", "les")]
# english determiner -> french forms (m sg, f sg, pl), whether it only goes with a singular
DETERMINERS = {
    "the": ("le", "la", "les", False),
    "a": ("un", "une", None, True),
    "my": ("mon", "ma", "mes", False),
    "his": ("son", "sa", "ses", False),
    "her": ("son", "sa", "ses", False),
    "our": ("notre", "notre", "nos", False),
    "their": ("leur", "leur", "leurs", False),
}


def starts_with_vowel(word: str) -> bool:
    return word.lower().startswith(VOWELS)


def elide(word: str, following: str) -> str:
    """le/la/je/ne/de + a word starting with a vowel sound -> l'/j'/n'/d'."""
    return word[:-1] + "'" if starts_with_vowel(following) else word + " "


class NounPhrase:
    def __init__(self, rng: random.Random, kinds: set[str], allow_plural: bool = True, determiner: str | None = None):
        self.noun = rng.choice([n for n in NOUNS if n[5] in kinds or n[0] in kinds])
        en_sg, en_pl, fr_sg, fr_pl, self.gender, kind = self.noun
        self.determiner = determiner or rng.choice(["the"] * 5 + ["a"] * 2 + ["my", "his", "her", "our", "their"])
        only_singular = DETERMINERS[self.determiner][3]
        self.plural = allow_plural and not only_singular and rng.random() < 0.35
        fits = [a for a in ADJECTIVES if kind in a[7]]
        self.before = self.after = None
        roll = rng.random()
        if roll < 0.3:
            self.before = rng.choice([a for a in fits if a[5]])
        if 0.2 < roll < 0.65:
            self.after = rng.choice([a for a in fits if not a[5]])
        self.en_noun = en_pl if self.plural else en_sg
        self.fr_noun = fr_pl if self.plural else fr_sg

    def adjective(self, adjective, next_word: str) -> str:
        _, m, f, mp, fp, _, m_vowel, _ = adjective
        if self.plural:
            return mp if self.gender == "m" else fp
        if self.gender == "f":
            return f
        return m_vowel if m_vowel and starts_with_vowel(next_word) else m

    def english(self) -> str:
        words = [a[0] for a in (self.before, self.after) if a]
        determiner = self.determiner
        if determiner == "a" and starts_with_vowel((words + [self.en_noun])[0]) and (words + [self.en_noun])[0][0] != "h":
            determiner = "an"
        return " ".join([determiner, *words, self.en_noun])

    def french_words(self) -> str:
        """The noun phrase without its determiner."""
        words = []
        if self.before:
            words.append(self.adjective(self.before, self.fr_noun))
        words.append(self.fr_noun)
        if self.after:
            words.append(self.adjective(self.after, ""))
        return " ".join(words)

    def french(self, preposition: str = "") -> str:
        """With its determiner, after ``preposition``, contracted where French contracts."""
        body = self.french_words()
        m, f, pl, _ = DETERMINERS[self.determiner]
        if self.determiner == "the":
            if self.plural:
                contracted = {"à": "aux", "de": "des"}.get(preposition)
                if contracted:
                    return f"{contracted} {body}"
                article = "les "
            elif starts_with_vowel(body):
                article = "l'"
            elif self.gender == "m":
                contracted = {"à": "au", "de": "du"}.get(preposition)
                if contracted:
                    return f"{contracted} {body}"
                article = "le "
            else:
                article = "la "
        elif self.plural:
            article = pl + " "
        elif self.gender == "f" and self.determiner in ("my", "his", "her") and starts_with_vowel(body):
            article = {"my": "mon ", "his": "son ", "her": "son "}[self.determiner]
        else:
            article = (m if self.gender == "m" else f) + " "
        phrase = article + body
        if preposition == "de":
            return elide("de", phrase) + phrase
        return f"{preposition} {phrase}" if preposition else phrase

    @property
    def person(self) -> str:
        return "3p" if self.plural else "3s"


def conjugate(verb, person: str) -> str:
    return {"1s": verb[2], "3s": verb[3], "1p": verb[4], "3p": verb[5]}[person]


def english_verb(verb, person: str, negative: bool) -> str:
    if negative:
        return ("does not " if person == "3s" else "do not ") + verb[0]
    return verb[1] if person == "3s" else verb[0]


def subject(rng: random.Random):
    """(english, french, person, gender-of-subject or None, plural) for a subject."""
    roll = rng.random()
    if roll < 0.3:
        en, fr, person, gender = rng.choice(PRONOUNS)
        return en, fr, person, gender, person == "1p"
    if roll < 0.42:
        a = NounPhrase(rng, {"animal", "person"}, allow_plural=False, determiner="the")
        b = NounPhrase(rng, {"animal", "person"}, allow_plural=False, determiner="the")
        while b.noun == a.noun:
            b = NounPhrase(rng, {"animal", "person"}, allow_plural=False, determiner="the")
        gender = "m" if "m" in (a.gender, b.gender) else "f"
        return f"{a.english()} and {b.english()}", f"{a.french()} et {b.french()}", "3p", gender, True
    np = NounPhrase(rng, {"animal", "person"})
    return np.english(), np.french(), np.person, np.gender, np.plural


def verb_phrase(french_subject: str, verb_form: str, negative: bool, clitic: str = "") -> str:
    """Subject + (ne) + (object pronoun) + verb + (pas), with elisions."""
    head = verb_form
    if clitic:
        head = elide(clitic, head) + head if clitic in ("le", "la") else f"{clitic} {head}"
    if negative:
        head = elide("ne", head) + head + " pas"
    if french_subject == "je":
        return elide("je", head) + head
    return f"{french_subject} {head}"


def sentence(rng: random.Random) -> tuple[str, str]:
    kind = rng.choices(["transitive", "pronoun", "intransitive", "predicate", "give"], [40, 12, 18, 15, 15])[0]
    en_subj, fr_subj, person, gender, plural = subject(rng)
    negative = rng.random() < 0.25
    if kind in ("transitive", "pronoun"):
        verb = rng.choice(VERBS)
        if kind == "pronoun":
            en_obj, clitic = rng.choice(OBJECT_PRONOUNS)
            if en_subj in ("he", "she") and en_obj in ("him", "her"):
                en_obj, clitic = "them", "les"
            fr = verb_phrase(fr_subj, conjugate(verb, person), negative, clitic)
            en = f"{en_subj} {english_verb(verb, person, negative)} {en_obj}"
        else:
            obj = NounPhrase(rng, OBJECT_KINDS[verb[6]])
            if negative and obj.determiner == "a":
                fr_obj = elide("de", obj.french_words()) + obj.french_words()
            else:
                fr_obj = obj.french()
            fr = f"{verb_phrase(fr_subj, conjugate(verb, person), negative)} {fr_obj}"
            en = f"{en_subj} {english_verb(verb, person, negative)} {obj.english()}"
    elif kind == "intransitive":
        verb = rng.choice(INTRANSITIVE)
        fr = verb_phrase(fr_subj, conjugate(verb, person), negative)
        en = f"{en_subj} {english_verb(verb, person, negative)}"
    elif kind == "predicate":
        adjective = rng.choice([a for a in ADJECTIVES if a[7] == ALL_KINDS or "person" in a[7]])
        if person == "1s" or person == "1p":
            en_subj, fr_subj, person, gender, plural = rng.choice([("he", "il", "3s", "m", False), ("she", "elle", "3s", "f", False)])
        if plural:
            form = adjective[3] if gender == "m" else adjective[4]
        else:
            form = adjective[1] if gender == "m" else adjective[2]
        be_en = "is" if person == "3s" else "are"
        be_fr = "est" if person == "3s" else "sont"
        if negative:
            fr = f"{fr_subj} {elide('ne', be_fr)}{be_fr} pas {form}"
            en = f"{en_subj} {be_en} not {adjective[0]}"
        else:
            fr = f"{fr_subj} {be_fr} {form}"
            en = f"{en_subj} {be_en} {adjective[0]}"
    else:
        obj = NounPhrase(rng, {"food", "thing"})
        receiver = NounPhrase(rng, {"animal", "person"}, determiner=rng.choice(["the", "the", "the", "my", "her"]))
        fr_obj = elide("de", obj.french_words()) + obj.french_words() if negative and obj.determiner == "a" else obj.french()
        fr = f"{verb_phrase(fr_subj, conjugate(GIVE, person), negative)} {fr_obj} {receiver.french('à')}"
        en = f"{en_subj} {english_verb(GIVE, person, negative)} {obj.english()} to {receiver.english()}"
    if kind in ("transitive", "intransitive") and rng.random() < 0.35:
        english_prep, french_prep, places = rng.choice(PREPOSITIONS)
        place = NounPhrase(rng, places, determiner=rng.choice(["the", "the", "my", "our", "a"]))
        if french_prep == "près de":
            fr_place = "près " + place.french("de")
        else:
            fr_place = place.french(french_prep)
        fr += " " + fr_place
        en += f" {english_prep} {place.english()}"
    return capitalize(en) + ".", capitalize(fr) + "."


def capitalize(text: str) -> str:
    return text[0].upper() + text[1:]


def main() -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    here = Path(__file__).resolve().parent
    for split, size in SIZES.items():
        rows = []
        while len(rows) < size:
            en, fr = sentence(rng)
            if en in seen:
                continue
            seen.add(en)
            rows.append({"text": en, "target": fr})
        with open(here / f"{split}.jsonl", "w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
