"""Deterministic speech for tests, benchmarks and the demo: the embedded English joe voice, noise off.

Piper samples noise on every call (the VITS latent and the phoneme durations), so two renderings of one
sentence differ (28,160 vs 28,416 samples seen for one text). With both noise scales at zero the same text
gives the same samples on every call and in every process, so a test or a benchmark hears the same input
each run and a margin measures the code, not the draw.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np

from ..audio import SAMPLE_RATE, resample

PAUSE_S = 0.8  # seconds of silence before, between and after the two phrases of `two_phrases`
TWO_PHRASES = ("Hello there, how are you doing today?", "I am fine, thank you very much.")


@cache
def _joe_voice():
    from piper import PiperVoice

    from ..models import joe_voice_paths

    model, config = joe_voice_paths()
    return PiperVoice.load(model, config_path=config)


def render_english(text: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Synthesize `text` with the joe voice, noise off: mono float32 at `sample_rate`. Not cached (see
    `say_english`); the same text always gives the same samples."""
    from piper import SynthesisConfig

    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(_joe_voice().synthesize(text, syn_config=quiet))
    if not chunks:
        raise ValueError(f"the joe voice has nothing to say for {text!r}")
    pcm = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return resample(pcm, chunks[0].sample_rate, sample_rate)


@lru_cache(maxsize=512)
def _rendered(text: str, sample_rate: int) -> np.ndarray:
    pcm = render_english(text, sample_rate)
    pcm.flags.writeable = False
    return pcm


def say_english(text: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`render_english`, synthesized once per (text, rate) in a process; each caller gets its own copy."""
    return _rendered(text, int(sample_rate)).copy()


def two_phrases(sample_rate: int = SAMPLE_RATE, *, say: Callable[[str], np.ndarray] | None = None) -> np.ndarray:
    """`TWO_PHRASES` spoken (by `say`, text → PCM at `sample_rate`; the joe voice by default), separated and
    surrounded by `PAUSE_S` of digital silence."""
    speak = say or (lambda text: say_english(text, sample_rate))
    silence = np.zeros(int(PAUSE_S * sample_rate), np.float32)
    a, b = (speak(text) for text in TWO_PHRASES)
    return np.concatenate([silence, a, silence, b, silence])


# Everyday sentences per language for measuring voices (benchmarks/voices.py, voice_language.py and the tests
# that check a voice is heard as its language): the same text everywhere, so numbers compare.
SAMPLE_SENTENCES: dict[str, list[str]] = {
    "es": [
        "Mañana por la mañana vamos a visitar el museo de la ciudad.",
        "Mi hermana trabaja en un hospital cerca de la estación.",
        "¿Puedes enviarme el informe antes del viernes, por favor?",
        "El tren llegó tarde porque había mucha nieve en las montañas.",
        "Me gustaría reservar una mesa para cuatro personas esta noche.",
        "Los niños juegan en el parque después de la escuela.",
        "Creo que deberíamos hablar con el director sobre este problema.",
        "La reunión empieza a las diez y termina antes del almuerzo.",
        "Nunca había visto un cielo tan azul como el de hoy.",
        "Gracias por venir, espero que disfrutes de la fiesta.",
    ],
    "pt": [
        "Amanhã de manhã vamos visitar o museu da cidade.",
        "Minha irmã trabalha em um hospital perto da estação.",
        "Você pode me enviar o relatório antes de sexta-feira, por favor?",
        "O trem chegou atrasado porque havia muita neve nas montanhas.",
        "Eu gostaria de reservar uma mesa para quatro pessoas hoje à noite.",
        "As crianças brincam no parque depois da escola.",
        "Acho que devemos falar com o diretor sobre este problema.",
        "A reunião começa às dez e termina antes do almoço.",
        "Nunca tinha visto um céu tão azul como o de hoje.",
        "Obrigado por ter vindo, espero que você aproveite a festa.",
    ],
    "de": [
        "Morgen früh besuchen wir das Museum in der Stadt.",
        "Meine Schwester arbeitet in einem Krankenhaus in der Nähe des Bahnhofs.",
        "Kannst du mir den Bericht bitte vor Freitag schicken?",
        "Der Zug kam zu spät, weil in den Bergen viel Schnee lag.",
        "Ich möchte heute Abend einen Tisch für vier Personen reservieren.",
        "Die Kinder spielen nach der Schule im Park.",
        "Ich glaube, wir sollten mit dem Direktor über dieses Problem sprechen.",
        "Die Besprechung beginnt um zehn und endet vor dem Mittagessen.",
        "Ich habe noch nie einen so blauen Himmel gesehen wie heute.",
        "Danke, dass du gekommen bist, ich hoffe, die Feier gefällt dir.",
    ],
    "fr": [
        "Demain matin, nous allons visiter le musée de la ville.",
        "Ma sœur travaille dans un hôpital près de la gare.",
        "Peux-tu m'envoyer le rapport avant vendredi, s'il te plaît?",
        "Le train est arrivé en retard parce qu'il y avait beaucoup de neige.",
        "Je voudrais réserver une table pour quatre personnes ce soir.",
        "Les enfants jouent dans le parc après l'école.",
        "Je pense que nous devrions parler de ce problème avec le directeur.",
        "La réunion commence à dix heures et se termine avant le déjeuner.",
        "Je n'avais jamais vu un ciel aussi bleu qu'aujourd'hui.",
        "Merci d'être venu, j'espère que tu profiteras de la fête.",
    ],
    "it": [
        "Domani mattina andiamo a visitare il museo della città.",
        "Mia sorella lavora in un ospedale vicino alla stazione.",
        "Puoi mandarmi il rapporto prima di venerdì, per favore?",
        "Il treno è arrivato in ritardo perché c'era molta neve in montagna.",
        "Vorrei prenotare un tavolo per quattro persone stasera.",
        "I bambini giocano nel parco dopo la scuola.",
        "Penso che dovremmo parlare con il direttore di questo problema.",
        "La riunione comincia alle dieci e finisce prima del pranzo.",
        "Non avevo mai visto un cielo così azzurro come quello di oggi.",
        "Grazie per essere venuto, spero che la festa ti piaccia.",
    ],
    "ca": [
        "Demà al matí anirem a visitar el museu de la ciutat.",
        "La meva germana treballa en un hospital a prop de l'estació.",
        "Em pots enviar l'informe abans de divendres, si us plau?",
        "El tren va arribar tard perquè hi havia molta neu a les muntanyes.",
        "M'agradaria reservar una taula per a quatre persones aquesta nit.",
        "Els nens juguen al parc després de l'escola.",
        "Crec que hauríem de parlar amb el director d'aquest problema.",
        "La reunió comença a les deu i acaba abans del dinar.",
        "No havia vist mai un cel tan blau com el d'avui.",
        "Gràcies per venir, espero que gaudeixis de la festa.",
    ],
    "en": [
        "Tomorrow morning we are going to visit the city museum.",
        "My sister works in a hospital near the train station.",
        "Could you send me the report before Friday, please?",
        "The train arrived late because there was a lot of snow in the mountains.",
        "I would like to book a table for four people tonight.",
        "The children play in the park after school.",
        "I think we should talk to the director about this problem.",
        "The meeting starts at ten and finishes before lunch.",
        "I had never seen a sky as blue as it is today.",
        "Thank you for coming, I hope you enjoy the party.",
    ],
}
