"""The English the rule planner reads: count words, determiners, fillers, relation words, positions, plurals."""

from __future__ import annotations

NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "another": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "hundred": 100, "dozen": 12, "no": 0, "zero": 0,
}  # fmt: skip
TENS = {20, 30, 40, 50}


def count_value(word: str) -> int | None:
    """The count a word gives: "three", "12", "twenty-three"; None when it is not a count."""
    if word in NUMBER_WORDS:
        return NUMBER_WORDS[word]
    if word.isdigit():
        return int(word)
    parts = word.split("-")
    if len(parts) == 2 and NUMBER_WORDS.get(parts[0]) in TENS and 1 <= NUMBER_WORDS.get(parts[1], 0) <= 9:
        return NUMBER_WORDS[parts[0]] + NUMBER_WORDS[parts[1]]
    return None


# vague quantities at the start of a noun phrase: words -> count used
VAGUE = {
    ("a", "pair", "of"): 2, ("a", "couple", "of"): 2, ("a", "few"): 3, ("several",): 3, ("some",): 3,
    ("multiple",): 3, ("a", "group", "of"): 3, ("a", "bunch", "of"): 3, ("many",): 5, ("lots", "of"): 5,
    ("a", "lot", "of"): 5, ("numerous",): 5,
}  # fmt: skip
DETERMINERS = {"a", "an", "the", "another", "this", "these", "those", "his", "its", "their", "my", "our", "your"}
FRAME_NOUNS = {
    "image", "picture", "photo", "photograph", "painting", "drawing", "illustration", "sketch", "render", "rendering",
    "scene", "canvas", "frame", "view", "shot", "snapshot", "artwork", "poster", "cartoon", "pic", "screen",
    "composition",
}  # fmt: skip
FRAME_LINKS = {"of", "with", "showing", "containing", "featuring", "depicting", "where"}
FILLERS = {
    "is", "are", "was", "were", "be", "being", "been", "there", "here", "which", "that", "who", "sits", "sit",
    "sitting", "seated", "stands", "stand", "standing", "placed", "located", "positioned", "situated", "lies", "lie",
    "lying", "rests", "rest", "resting", "appears", "appear", "hangs", "hang", "hanging", "floats", "floating",
    "flies", "flying", "parked", "put", "kept", "stacked", "perched", "shown", "drawn", "visible", "directly", "just",
    "slightly", "far", "immediately", "somewhere", "exactly", "right", "also", "both", "all", "each", "clearly",
    "further", "farther",
}  # fmt: skip
SEPARATORS = {"and", ",", ";", ".", "!", "?", ":", "with", "plus", "while", "whereas", "but", "then"}
MULTI_SEPARATORS = (("as", "well", "as"), ("along", "with"), ("together", "with"))
SENTENCE_END = {";", ".", "!", "?"}
PRONOUNS = {"it", "them", "they", "him", "her"}
STYLE_WORDS = {
    "4k", "8k", "hd", "uhd", "hdr", "digital", "art", "artstation", "trending", "highly", "detailed", "photorealistic",
    "realistic", "hyperrealistic", "octane", "render", "unreal", "engine", "masterpiece", "best", "quality", "high",
    "resolution", "cinematic", "lighting", "sharp", "focus", "concept", "style", "oil", "painting", "watercolor",
    "watercolour", "anime", "studio", "ghibli", "professional", "photography", "award", "winning", "ultra",
}  # fmt: skip
# verbs that end an object when two noun phrases follow each other without "and" ("a dog chasing a cat")
VERBS = {"has", "have", "holds", "wears", "rides", "eats", "carries", "chases", "watches", "sees", "contains", "hugs"}
COLOURS = {
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "grey", "gray", "violet",
    "cyan", "magenta", "golden", "silver", "beige", "teal", "turquoise", "maroon", "navy",
}  # fmt: skip
IRREGULAR_PLURALS = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse", "geese": "goose",
    "feet": "foot", "teeth": "tooth", "oxen": "ox", "wolves": "wolf", "knives": "knife", "leaves": "leaf",
    "shelves": "shelf", "loaves": "loaf", "calves": "calf", "halves": "half",
}  # fmt: skip

# Relation words. Kinds: "left of", "right of", "above", "below", "next to", "on top of", "between";
# unsupported ones become notes (the objects are still placed, spread apart).
RELATION_WORDS: dict[tuple[str, ...], str] = {
    ("left", "of"): "left of", ("right", "of"): "right of", ("to", "left", "of"): "left of",
    ("to", "right", "of"): "right of", ("above",): "above", ("over",): "above", ("higher", "than"): "above",
    ("below",): "below", ("under",): "below", ("underneath",): "below", ("beneath",): "below",
    ("lower", "than"): "below", ("on", "top", "of"): "on top of", ("atop",): "on top of", ("on",): "on top of",
    ("onto",): "on top of", ("upon",): "on top of", ("next", "to"): "next to", ("beside",): "next to",
    ("besides",): "next to", ("near",): "next to", ("close", "to"): "next to", ("adjacent", "to"): "next to",
    ("alongside",): "next to", ("by", "the", "side", "of"): "next to", ("between",): "between",
    ("in", "between"): "between", ("behind",): "?", ("in", "front", "of"): "?", ("in",): "?", ("inside",): "?",
    ("inside", "of"): "?", ("within",): "?", ("into",): "?", ("around",): "?", ("among",): "?", ("amongst",): "?",
    ("across", "from"): "?", ("opposite",): "?", ("facing",): "?", ("against",): "?", ("surrounded", "by"): "?",
    ("through",): "?", ("along",): "?", ("beyond",): "?", ("outside",): "?", ("at",): "?", ("toward",): "?",
    ("towards",): "?",
}  # fmt: skip
MAX_REL_LEN = max(len(k) for k in RELATION_WORDS)
# reciprocal endings: None = the relation before ("next to each other"), else a relation of their own
RECIPROCAL = {("each", "other"): None, ("one", "another"): None, ("side", "by", "side"): "next to"}
REL_FIRST = {k[0] for k in RELATION_WORDS}
STOP_FRAME = SEPARATORS | DETERMINERS | set(NUMBER_WORDS) | FILLERS
POSITION_WORDS = {"left", "right", "top", "bottom", "upper", "lower", "middle", "center", "centre", "far"}
POSITION_TAILS = {"side", "half", "corner", "part", "edge", "area", "hand", "left-hand", "right-hand"}
POSITION_AXES = {
    "left": "left", "right": "right", "top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom",
    "middle": "middle", "center": "middle", "centre": "middle",
}  # fmt: skip


def singular(word: str) -> str:
    w = word.lower()
    if w in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[w]
    if not is_plural(w):
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("ches", "shes", "xes", "sses", "zes", "oes")):
        return w[:-2]
    return w[:-1]


def is_plural(word: str) -> bool:
    w = word.lower()
    if w in IRREGULAR_PLURALS:
        return True
    return len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is", "ous", "'s", "’s"))


# Function words of other languages (French, Spanish, German, Italian) that English prompts do not use: a prompt
# with more of them than English function words is not English, and the rule planner says so instead of reading it.
FOREIGN_WORDS = {
    "un", "une", "le", "les", "des", "du", "et", "avec", "sur", "sous", "dans", "au", "aux", "deux", "trois", "gauche",
    "droite", "à", "côté", "dessus", "dessous", "el", "los", "las", "una", "unos", "y", "con", "sobre", "dos", "tres",
    "izquierda", "derecha", "encima", "debajo", "der", "das", "ein", "eine", "einem", "einen", "einer", "und", "mit",
    "neben", "auf", "unter", "zwei", "drei", "links", "rechts", "il", "gli", "uno", "di", "della", "sinistra",
    "destra",
}  # fmt: skip
ENGLISH_WORDS = (
    DETERMINERS
    | set(NUMBER_WORDS)
    | SEPARATORS
    | FILLERS
    | PRONOUNS
    | FRAME_LINKS
    | {w for k in RELATION_WORDS for w in k}
)
