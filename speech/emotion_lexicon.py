"""A small English and Indonesian emotion lexicon, with negation and intensifier words."""

from __future__ import annotations

from speech.types import EmotionLabel


def _words(text: str, *phrases: str) -> frozenset[str]:
    return frozenset(text.split()) | frozenset(phrases)


# Words (and two-word phrases) that signal each emotion. Deliberately small and high-precision:
# a knowledge-base bot mostly hears neutral questions, and a wrong emotion is worse than none.
LEXICON: dict[EmotionLabel, frozenset[str]] = {
    "happy": _words(
        """happy glad great awesome excellent wonderful fantastic perfect love loved lovely
        nice thanks thank thankful grateful pleased delighted yay cool brilliant superb enjoy
        enjoyed fun excited glad relieved
        senang bahagia gembira mantap keren bagus hebat asyik asik puas makasih
        terimakasih seru sukses syukur alhamdulillah lega""",
        "thank you",
        "terima kasih",
        "luar biasa",
        "well done",
    ),
    "sad": _words(
        """sad unhappy depressed depressing disappointed disappointing lonely miserable cry
        crying cried heartbroken hopeless unfortunately sadly gloomy grief grieving
        sedih kecewa kesepian menangis nangis galau murung sayangnya duka pilu hancur""",
        "patah hati",
        "putus asa",
        "feel down",
    ),
    "angry": _words(
        """angry mad furious annoyed annoying hate hated terrible awful useless stupid
        ridiculous frustrated frustrating worst outrageous unacceptable pathetic damn wtf
        rubbish garbage irritated irritating
        marah kesal kesel benci jengkel sebal sebel bodoh payah geram muak bete brengsek
        sialan parah kampret"""
    ),
    "fearful": _words(
        """afraid scared fear feared worried worry worrying anxious nervous panic panicking
        terrified frightened frightening scary dread
        takut khawatir kuatir cemas panik ngeri gugup waswas was-was deg-degan
        seram"""
    ),
    "surprised": _words(
        """wow whoa woah surprised surprising surprise shocked shocking astonished amazed
        unbelievable unexpected incredible omg
        wah kaget terkejut astaga lho loh ternyata""",
        "no way",
        "ya ampun",
    ),
}

NEGATIONS = _words(
    """not no never none nothing nobody hardly barely without don't doesn't didn't isn't
    aren't wasn't weren't can't cannot couldn't won't wouldn't shouldn't haven't hasn't dont
    doesnt didnt isnt wasnt cant wont
    tidak tak bukan belum jangan nggak ngga gak ga enggak engga ndak kagak"""
)

INTENSIFIERS = _words(
    """very really so extremely super totally absolutely completely incredibly too
    sangat banget sekali amat terlalu paling benar-benar bener-bener"""
)

# Indonesian suffixes to strip when a word is not in the lexicon as written (senangnya, marahlah).
SUFFIXES = ("nya", "lah", "kah", "pun")

# Negating these means the opposite feeling ("not happy" is sad); negating others cancels them.
NEGATED_TO: dict[EmotionLabel, EmotionLabel | None] = {
    "happy": "sad",
    "sad": None,
    "angry": None,
    "fearful": None,
    "surprised": None,
}
