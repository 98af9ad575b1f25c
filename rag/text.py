"""Text helpers shared by indexing and retrieval: normalization, tokens, stopwords, hashing."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

# Word characters as SQLite's unicode61 tokenizer sees them: letters and digits; "_" separates.
_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ENGLISH_STOPWORDS = _words(
    """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can cannot could couldn did didn do does doesn doing
    don down during each either else ever every few for from further had hadn has hasn have
    haven having he her here hers herself him himself his how however i if in into is isn it its
    itself just let ll me might more most must mustn my myself no nor not now of off on once only
    or other ought our ours ourselves out over own per rather re same shall shan she should
    shouldn so some such than that the their theirs them themselves then there these they this
    those though through thus to too under until up upon us ve very via was wasn we were weren
    what whatever when whenever where whereas wherever whether which while who whoever whom
    whose why will with within without would wouldn yet you your yours yourself yourselves
    s t d m o y
    """
)

# Words that frame a question rather than say what it is about.
QUESTION_FILLERS = _words(
    """
    tell explain describe please pls thanks thank hi hello hey anyone somebody someone
    something anything everything thing things way ways possible possibly able want wants wanted
    wanna like would know need needs needed go goes going get gets got getting
    actually really exactly basically just maybe perhaps kind sort okay ok
    one ones much many lot lots etc eg ie
    """
)

INDONESIAN_STOPWORDS = _words(
    """
    ada adalah adakah agar akan aku anda apa apakah atau bagaimana bagaimanakah bahwa banyak
    beberapa begitu belum berapa bisa boleh buat bukan cara caranya dalam dan dapat dari demikian
    dengan di dia dong deh gak harus hanya ia ingin ini itu jadi jika juga kah kalau kami kamu
    kapan karena ke kenapa kita lagi lah lalu mana masih mau mengapa mereka misalnya mohon nggak
    nya oleh pada para perlu pun saat saja saya sebagai sebelum sedang sehingga sekarang seperti
    setelah sih siapa sini situ sudah supaya tak tanpa tapi tentang tersebut tidak tolong untuk
    yaitu yang ya
    """
)

STOPWORDS = ENGLISH_STOPWORDS | QUESTION_FILLERS | INDONESIAN_STOPWORDS


def fold(text: str) -> str:
    """Lower-case `text` and strip diacritics, like unicode61 with remove_diacritics."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold()


def tokenize(text: str) -> list[str]:
    """Folded word tokens of `text`, in order."""
    return _WORD.findall(fold(text))


_CONTRACTION = re.compile(r"\b(won|can|shan|\w+n)['’]t\b|['’](?:s|re|ve|ll|d|m)\b", re.I)
_NEGATION_BASE = {"won": "will", "can": "can", "shan": "shall"}


def expand_contractions(text: str) -> str:
    """`won't` -> `will not`, `doesn't` -> `does not`; `'s`, `'re`, `'ll`... dropped."""

    def repl(match: re.Match[str]) -> str:
        stem = match.group(1)
        if stem is None:
            return ""
        base = _NEGATION_BASE.get(stem.lower(), stem[:-1] if stem.lower().endswith("n") else stem)
        return f"{base} not"

    return _CONTRACTION.sub(repl, text)


# "how long / often / soon / far" ask for a quantity; the adverb is no topic word.
_HOW_QUANTITY = re.compile(r"\bhow\s+(?:long|often|soon|far)\b", re.I)
_SHORT_FLAG = re.compile(r"(?:^|[\s(\[\"'`])-([A-Za-z0-9])(?![\w-])")


def content_terms(text: str) -> list[str]:
    """The distinct tokens of `text` that carry meaning (no stopwords), in first-seen order.

    Single characters count only as digits or as short command-line flags (`-h`).
    """
    flags = {fold(letter) for letter in _SHORT_FLAG.findall(text)}
    seen: dict[str, None] = {}
    for token in tokenize(_HOW_QUANTITY.sub("how", expand_contractions(text))):
        if token in flags:
            seen.setdefault(token, None)
            continue
        if token in STOPWORDS or (len(token) < 2 and not token.isdigit()):
            continue
        seen.setdefault(token, None)
    return list(seen)


_CAMEL = re.compile(r"\b[A-Za-z][A-Za-z0-9]*[a-z0-9][A-Z][A-Za-z0-9]*\b")
_CAMEL_LOWER_UPPER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CAMEL_ACRONYM = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")


_COMPOUND = re.compile(r"\b([^\W\d_]+)-([^\W\d_]+)\b")


def identifier_parts(text: str) -> str:
    """Extra words to index with `text`: the parts of its camelCase identifiers
    (`GZipMiddleware` -> gzip middleware zip) and its hyphenated words joined (`Wi-Fi` -> wifi),
    so that a search for either spelling finds them."""
    parts: dict[str, None] = {}
    for first, second in _COMPOUND.findall(text):
        parts.setdefault(fold(first + second), None)
    for name in _CAMEL.findall(text):
        coarse = _CAMEL_LOWER_UPPER.split(name)
        fine = [p for piece in coarse for p in _CAMEL_ACRONYM.split(piece)]
        for part in (*coarse, *fine):
            if len(part) > 1:
                parts.setdefault(part.lower(), None)
    return " ".join(parts)


def sha256_hex(data: bytes | str) -> str:
    """The hex SHA-256 of `data` (text is UTF-8 encoded)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def normalize_space(text: str) -> str:
    """Collapse runs of spaces inside lines and runs of blank lines; trim the ends."""
    lines = [re.sub(r"[ \t\f\v\u00a0]+", " ", line).strip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


# Interchangeable words of technical questions: each word of a group stands for the others.
# Porter stemming already joins inflections (install/installs/installing), so one form each.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("install", "setup"),
    ("configure", "config", "setting", "option", "customize"),
    ("remove", "delete", "uninstall", "erase"),
    ("error", "exception", "fail", "failure", "crash"),
    ("problem", "issue", "trouble", "troubleshoot"),
    ("run", "execute", "invoke", "launch", "start"),
    ("stop", "terminate", "kill", "shutdown", "halt", "abort", "cancel", "interrupt"),
    ("update", "upgrade", "migrate"),
    ("login", "signin", "authenticate"),
    ("password", "credential", "secret", "token"),
    ("fast", "speed", "slow", "performance", "latency", "optimize"),
    ("backup", "snapshot", "restore"),
    ("limit", "quota", "maximum", "cap"),
    ("log", "logging", "logger"),
    ("permission", "access", "privilege", "authorization"),
    ("container", "docker"),
    ("certificate", "cert", "tls", "ssl"),
    ("schedule", "cron", "periodic", "interval"),
    ("memory", "ram"),
    ("disk", "storage"),
    ("check", "verify", "validate", "confirm"),
    ("show", "display", "print", "output", "echo"),
    ("create", "make", "add", "generate"),
    ("find", "search", "lookup", "locate"),
    ("download", "fetch", "pull", "retrieve"),
    ("upload", "push"),
    ("send", "post", "submit", "deliver"),
    ("user", "account", "member"),
    ("rename", "move"),
    ("copy", "duplicate", "clone"),
    ("connect", "connection", "reach"),
    ("timeout", "hang", "stuck", "freeze", "unresponsive"),
    ("debug", "troubleshoot", "diagnose"),
    ("secure", "security", "encrypt", "protect"),
    ("monitor", "metric", "telemetry", "observability"),
    ("scale", "replica", "autoscale"),
    ("rollback", "revert", "undo", "downgrade"),
    ("deploy", "release", "rollout", "ship"),
    ("documentation", "manual", "guide"),
    ("required", "mandatory"),
    ("prompt", "ask", "input"),
    ("directory", "folder"),
    ("command", "subcommand"),
    ("help", "usage"),
    ("terminal", "console", "shell", "cli"),
    ("encoding", "charset", "unicode"),
    ("callback", "hook", "handler"),
    ("plugin", "extension", "addon"),
    ("completion", "autocomplete"),
    ("test", "unittest", "pytest"),
    ("hide", "hidden"),
    ("multiple", "several", "repeated"),
    ("boolean", "flag", "switch", "toggle"),
    ("choice", "choose", "select", "enum"),
    ("integer", "number", "numeric"),
    ("range", "bound", "clamp"),
    ("date", "datetime", "timestamp"),
    ("pager", "paging"),
    ("editor", "edit"),
    ("clear", "reset", "wipe"),
    ("dash", "hyphen"),
    ("latest", "newest", "recent", "current"),
    ("obsolete", "deprecated", "deprecate"),
    ("disable", "deactivate"),
    ("enable", "activate"),
    ("forbid", "deny", "reject", "refuse"),
    ("allow", "permit", "accept"),
    ("big", "large", "size"),
    ("url", "link", "address"),
    ("retain", "retention", "keep"),
)

# Spellings of one thing (abbreviations, phrases): found one, the others count nearly as much.
EQUIVALENTS: tuple[tuple[str, ...], ...] = (
    ("stderr", "standard error"),
    ("stdout", "standard output"),
    ("stdin", "standard input"),
    ("env", "environment"),
    ("env var", "envvar", "environment variable"),
    ("var", "variable"),
    ("dir", "directory"),
    ("cfg", "conf", "config", "configuration"),
    ("repo", "repository"),
    ("app", "application"),
    ("db", "database"),
    ("arg", "argument"),
    ("param", "parameter"),
    ("cmd", "command"),
    ("msg", "message"),
    ("pkg", "package"),
    ("lib", "library"),
    ("info", "information"),
    ("impl", "implementation"),
    ("async", "asynchronous"),
    ("sync", "synchronous"),
    ("exe", "executable"),
    ("docs", "documentation"),
    ("auth", "authentication"),
    ("tmp", "temp", "temporary"),
    ("ws", "websocket"),
    ("regex", "regexp", "regular expression"),
    ("max", "maximum"),
    ("min", "minimum"),
    ("num", "number"),
    ("int", "integer"),
    ("str", "string"),
    ("bool", "boolean"),
    ("dict", "dictionary"),
    ("func", "function"),
    ("obj", "object"),
    ("ctx", "context"),
    ("req", "request"),
    ("resp", "response"),
    ("err", "error"),
    ("src", "source"),
    ("dest", "destination"),
    ("k8s", "kubernetes"),
    ("tz", "timezone", "time zone"),
    ("ip", "ip address", "client address"),
    ("cli", "command line"),
    ("ui", "user interface"),
    ("id", "identifier"),
    ("setup", "set up"),
    ("login", "log in", "sign in"),
    ("logout", "log out", "sign out"),
    ("shutdown", "shut down"),
    ("timeout", "time out"),
    ("rollback", "roll back"),
    ("cleanup", "clean up"),
    ("lookup", "look up"),
    ("remove", "get rid of"),
    ("disable", "turn off", "switch off"),
    ("enable", "turn on", "switch on"),
    ("exit code", "exit status", "return code"),
    ("deprecated", "going away", "phased out"),
)

SYNONYM_WEIGHT = 0.3  # search weight of a synonym, relative to the word itself
EQUIVALENT_WEIGHT = 0.6
SYNONYM_CREDIT = 0.7  # share of a question word's coverage that a synonym found earns
EQUIVALENT_CREDIT = 0.9


def _group_map(groups: tuple[tuple[str, ...], ...]) -> dict[str, tuple[str, ...]]:
    mapping: dict[str, list[str]] = {}
    for group in groups:
        for word in group:
            others = mapping.setdefault(word, [])
            others.extend(w for w in group if w != word and w not in others)
    return {word: tuple(others) for word, others in mapping.items()}


SYNONYMS: dict[str, tuple[str, ...]] = _group_map(SYNONYM_GROUPS)
_EQUIVALENTS: dict[str, tuple[str, ...]] = _group_map(EQUIVALENTS)

_SPELLING = (
    (re.compile(r"(\w{3,})is(e|ed|es|ing|ation|ations|er|ers)$"), r"\1iz\2"),
    (re.compile(r"(\w{3,})iz(e|ed|es|ing|ation|ations|er|ers)$"), r"\1is\2"),
    (re.compile(r"(\w{2,}[^aeiou])our(s|ed|ing|ite|ites)?$"), r"\1or\2"),
    (re.compile(r"(\w{3,})yse(s|d)?$"), r"\1yze\2"),
    (re.compile(r"(\w{3,})tre(s)?$"), r"\1ter\2"),
    (re.compile(r"^(lic|def|off)ence$"), r"\1ense"),
)


def spelling_variants(word: str) -> list[str]:
    """British/American variants of `word` (colour/color, initialise/initialize)."""
    variants = []
    for pattern, replacement in _SPELLING:
        variant = pattern.sub(replacement, word)
        if variant != word and variant not in variants:
            variants.append(variant)
    return variants


def lemma_forms(word: str) -> list[str]:
    """`word` and crude base forms of it (plural, -ing, -ed), to look it up in word lists."""
    forms = [word]
    if len(word) > 3:
        if word.endswith("ies"):
            forms.append(word[:-3] + "y")
        if word.endswith("es"):
            forms.append(word[:-2])
        if word.endswith("s") and not word.endswith("ss"):
            forms.append(word[:-1])
        for suffix in ("ing", "ed"):
            if word.endswith(suffix) and len(word) > len(suffix) + 2:
                stem = word[: -len(suffix)]
                forms.extend([stem, stem + "e"])
                if len(stem) > 2 and stem[-1] == stem[-2]:
                    forms.append(stem[:-1])
    return forms


def _lookup(table: dict[str, tuple[str, ...]], word: str) -> tuple[str, ...]:
    forms = lemma_forms(word)
    for form in forms:
        found = table.get(form)
        if found:
            return tuple(w for w in found if w not in forms)
    return ()


def synonyms_of(word: str) -> tuple[str, ...]:
    """The curated synonyms of `word` (or of its base form)."""
    return _lookup(SYNONYMS, word)


@dataclass(frozen=True)
class QueryTerm:
    """A word (or phrase) to search for, its weight, and the question word it stands for.

    `credit` is the share of `origin`'s coverage that finding this term earns.
    """

    text: str
    weight: float
    origin: str
    credit: float = 1.0

    @property
    def is_original(self) -> bool:
        return self.text == self.origin


def fts_phrase(term: str) -> str:
    """`term` as a quoted FTS5 string: never read as an operator, column filter or prefix."""
    return '"' + term.replace('"', '""') + '"'


def analyze_query(query: str, *, synonym_weight: float = SYNONYM_WEIGHT) -> list[QueryTerm]:
    """The content words of `query` (weight 1), their other spellings and their synonyms."""
    originals = content_terms(query)
    terms = {word: QueryTerm(word, 1.0, word) for word in originals}

    def add(term: QueryTerm) -> None:
        if term.text not in terms and term.text not in STOPWORDS:
            terms[term.text] = term

    for word in originals:
        for variant in spelling_variants(word):
            add(QueryTerm(variant, 1.0, word))
    for first, second in _COMPOUND.findall(query):
        head = fold(first) if fold(first) in terms else fold(second)
        if head in terms:
            add(QueryTerm(fold(first + second), 1.0, head))
    if synonym_weight <= 0:
        return list(terms.values())
    equivalent_weight = min(1.0, synonym_weight * EQUIVALENT_WEIGHT / SYNONYM_WEIGHT)
    tokens = tokenize(expand_contractions(query))
    for size in (3, 2, 1):
        for start in range(len(tokens) - size + 1):
            window = tokens[start : start + size]
            others = _EQUIVALENTS.get(" ".join(window)) if size > 1 else None
            if size == 1 and window[0] in terms:
                others = _lookup(_EQUIVALENTS, window[0])
            if not others:
                continue
            origin = next((w for w in window if w in terms), None)
            if origin is None:
                continue
            for other in others:
                add(QueryTerm(other, equivalent_weight, origin, EQUIVALENT_CREDIT))
    for word in originals:
        for synonym in synonyms_of(word):
            add(QueryTerm(synonym, synonym_weight, word, SYNONYM_CREDIT))
    return list(terms.values())


_NAME = re.compile(r"[A-Za-z][\w.+#-]*")


def named_terms(text: str) -> list[str]:
    """Folded tokens of the words that look like names: capitalised after the first word of a
    sentence, or mixing letters and digits ("Django", "PostgreSQL", "HTTP2")."""
    names: dict[str, None] = {}
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        for position, word in enumerate(_NAME.findall(sentence)):
            is_name = position > 0 and word[0].isupper() and word != "I"
            if is_name or (any(c.isdigit() for c in word) and any(c.isalpha() for c in word)):
                for token in tokenize(word):
                    if token not in STOPWORDS:
                        names.setdefault(token, None)
    return list(names)
