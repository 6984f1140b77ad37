"""Valid generator answers in the language and combination a prompt asks for.

Texts are built from real sentences (subject x place x time) so every answer differs and
the offline language identifier recognises each language, as it would real model output.
"""

from __future__ import annotations

import json
import re

LEXICON = {
    "en": dict(
        subjects=[
            "a red bicycle",
            "an old fisherman",
            "two children",
            "a black cat",
            "a wooden boat",
            "a street musician",
            "a yellow taxi",
            "a small bakery",
        ],
        places=[
            "next to the river",
            "in the snowy mountains",
            "at the busy market",
            "under a big oak tree",
            "on a sandy beach",
            "in front of the cathedral",
            "inside a quiet library",
            "at the train station",
        ],
        times=[
            "in the early morning",
            "at noon",
            "in the late afternoon",
            "at sunset",
            "at night",
            "on a rainy day",
            "in the middle of winter",
            "during a hot summer",
        ],
        query="a photo that shows {s} {p} {t}, seen from the other side of the street",
        positive="This picture clearly shows {s} {p} {t}, surrounded by people and warm light.",
        negative="An empty road without any people or animals, only grey walls and closed windows.",
    ),
    "de": dict(
        subjects=[
            "ein rotes Fahrrad",
            "ein alter Fischer",
            "zwei Kinder",
            "eine schwarze Katze",
            "ein Holzboot",
            "ein Straßenmusiker",
            "ein gelbes Taxi",
            "eine kleine Bäckerei",
        ],
        places=[
            "neben dem Fluss",
            "in den verschneiten Bergen",
            "auf dem belebten Markt",
            "unter einer großen Eiche",
            "an einem Sandstrand",
            "vor der Kathedrale",
            "in einer ruhigen Bibliothek",
            "am Bahnhof",
        ],
        times=[
            "am frühen Morgen",
            "am Mittag",
            "am späten Nachmittag",
            "bei Sonnenuntergang",
            "in der Nacht",
            "an einem regnerischen Tag",
            "mitten im Winter",
            "in einem heißen Sommer",
        ],
        query="ein Foto, auf dem man {s} {p} {t} sieht, von der anderen Straßenseite aus",
        positive="Dieses Bild zeigt deutlich {s} {p} {t}, umgeben von Menschen und warmem Licht.",
        negative="Eine leere Straße ohne Menschen und ohne Tiere, nur graue Mauern und geschlossene Fenster.",
    ),
    "fr": dict(
        subjects=[
            "un vélo rouge",
            "un vieux pêcheur",
            "deux enfants",
            "un chat noir",
            "un bateau en bois",
            "un musicien de rue",
            "un taxi jaune",
            "une petite boulangerie",
        ],
        places=[
            "près de la rivière",
            "dans les montagnes enneigées",
            "au marché animé",
            "sous un grand chêne",
            "sur une plage de sable",
            "devant la cathédrale",
            "dans une bibliothèque calme",
            "à la gare",
        ],
        times=[
            "tôt le matin",
            "à midi",
            "en fin d'après-midi",
            "au coucher du soleil",
            "pendant la nuit",
            "par un jour de pluie",
            "au milieu de l'hiver",
            "pendant un été très chaud",
        ],
        query="une photo qui montre {s} {p} {t}, vue depuis l'autre côté de la rue",
        positive="Cette image montre clairement {s} {p} {t}, entouré de gens et d'une lumière chaude.",
        negative="Une rue vide sans personne et sans animaux, seulement des murs gris et des fenêtres fermées.",
    ),
    "es": dict(
        subjects=[
            "una bicicleta roja",
            "un viejo pescador",
            "dos niños",
            "un gato negro",
            "un barco de madera",
            "un músico callejero",
            "un taxi amarillo",
            "una pequeña panadería",
        ],
        places=[
            "junto al río",
            "en las montañas nevadas",
            "en el mercado lleno de gente",
            "bajo un gran roble",
            "en una playa de arena",
            "frente a la catedral",
            "dentro de una biblioteca tranquila",
            "en la estación de tren",
        ],
        times=[
            "muy temprano por la mañana",
            "al mediodía",
            "al final de la tarde",
            "a la puesta del sol",
            "durante la noche",
            "en un día de lluvia",
            "en pleno invierno",
            "durante un verano caluroso",
        ],
        query="una foto que muestra {s} {p} {t}, vista desde el otro lado de la calle",
        positive="Esta imagen muestra claramente {s} {p} {t}, rodeado de gente y de una luz cálida.",
        negative="Una calle vacía sin personas y sin animales, solo paredes grises y ventanas cerradas.",
    ),
    "ja": dict(
        subjects=[
            "赤い自転車",
            "年老いた漁師",
            "二人の子供",
            "黒い猫",
            "木の船",
            "路上の音楽家",
            "黄色いタクシー",
            "小さなパン屋",
        ],
        places=[
            "川のそばの",
            "雪の山の中の",
            "にぎやかな市場の",
            "大きな木の下の",
            "砂浜の",
            "大聖堂の前の",
            "静かな図書館の中の",
            "駅の",
        ],
        times=["早朝の", "昼の", "夕方の", "日没の", "夜の", "雨の日の", "真冬の", "暑い夏の"],
        query="{t}{p}{s}が写っている写真を探しています。道の反対側から撮ったものです。",
        positive="この写真には{t}{p}{s}がはっきりと写っていて、周りには人々と暖かい光があります。",
        negative="誰もいない道路の写真で、人も動物もいなくて、灰色の壁と閉じた窓だけがあります。",
    ),
}
INSTRUCTIONS = {
    "classification": "Identify the main subject and setting shown in the given image.",
    "vqa": "Represent the given image with the following question:",
    "retrieval": "Find an everyday photo that matches the given description.",
}
TASK_OF = {"Classification": "classification", "Visual": "vqa", "Retrieval": "retrieval"}


def prompt_text(request: dict) -> str:
    user = next(message for message in request["messages"] if message["role"] == "user")
    content = user["content"]
    return (
        content
        if isinstance(content, str)
        else "\n".join(part.get("text", "") for part in content if part.get("type") == "text")
    )


def asked(request: dict) -> tuple[str, str, str]:
    """(task, combination, language code) the prompt asks for."""
    text = prompt_text(request)
    task = TASK_OF[re.search(r"Task: (\w+)", text).group(1)]
    combo = re.search(r"Modality combination (\S+):", text).group(1)
    language = re.search(r"hard_negative in [^()]+ \(([\w-]+)\)", text).group(1)
    return task, combo, language


def data(task: str, combo: str, language: str, number: int) -> dict:
    words = LEXICON[language]
    slots = dict(
        s=words["subjects"][number % 8], p=words["places"][(number // 8) % 8], t=words["times"][(number // 64) % 8]
    )
    query_side, target_side = combo.split("->")
    return {
        "instruction": INSTRUCTIONS[task],
        "query": words["query"].format(**slots) if "T" in query_side else "",
        "positive": words["positive"].format(**slots) if "T" in target_side else "",
        "hard_negative": words["negative"] if "T" in target_side else "",
    }


def answer(task: str, combo: str, language: str, number: int, **override) -> dict:
    revised = data(task, combo, language, number)
    revised.update(override)
    return {
        "description": {
            "general": "A street scene.",
            "objects": "A bicycle, people, a wall.",
            "context": "Daylight in a town.",
            "brainstorm": "Ask about the bicycle's colour.",
        },
        "data": dict(revised),
        "evaluation": {
            "relevance": "good",
            "plausibility": "realistic",
            "clarity": "clear",
            "diversity": "varied",
            "improvements": "mention the time of day",
        },
        "revised": revised,
    }


def answer_for(request: dict, number: int, **override) -> str:
    """The JSON text of a valid answer to this request."""
    return json.dumps(answer(*asked(request), number, **override), ensure_ascii=False)
