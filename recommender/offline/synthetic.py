"""A synthetic demo shop: catalog, offers, event histories and their ground truth.

``zmot demo-data`` calls :func:`generate`. The shop and its shoppers are data (the tables
below): categories with brands and title templates, query phrasings per intent and language,
and intents as sequences of journey phases. Users act out one or two intents ("my TV broke",
"going hiking") as searches, views, carts, purchases and reviews with realistic time gaps.
The engine never sees the intents: they go to ``intents.jsonl`` for tests and evaluation only,
so whatever the engine learns about TVs it learns from behaviour.

Everything is drawn from seeded :class:`random.Random` streams: the catalog from the seed
alone, each user from (seed, user number). The files are therefore byte-identical for the same
(users, seed, start), and user *i*'s history does not depend on how many users are generated.
All events are held in memory to sort them by time (about 15 events per user: fine for the
hundreds of thousands of users a demo needs).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import random
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from tqdm import tqdm

from recommender.core.errors import ConfigError

# --------------------------------------------------------------------------------------
# The shop: categories, brands, title templates
# --------------------------------------------------------------------------------------

Option = tuple[str, float, str]
"""A title slot value: text shown in the title, price factor, tag ("" for none)."""


def _opts(*specs: str) -> tuple[Option, ...]:
    """Options from ``"text|price factor|tag"`` specs (factor and tag may be left out)."""
    out: list[Option] = []
    for spec in specs:
        parts = spec.split("|")
        factor = float(parts[1]) if len(parts) > 1 and parts[1] else 1.0
        out.append((parts[0], factor, parts[2] if len(parts) > 2 else ""))
    return tuple(out)


@dataclass(frozen=True)
class Kind:
    """One kind of product in a category: how many items, title template, price and tags."""

    count: int
    template: str
    price: tuple[float, float]
    tags: tuple[str, ...]
    slots: dict[str, tuple[Option, ...]] = field(default_factory=dict)
    brands: tuple[str, ...] = ()  # empty: the category's brands


@dataclass(frozen=True)
class Category:
    """A dotted category path with its brands, margin range and kinds of products."""

    name: str
    brands: tuple[str, ...]
    margin: tuple[float, float]  # expected margin as a share of the price
    kinds: tuple[Kind, ...]
    background: bool = True  # main products; accessories and services are never noise


_GENDER = _opts("Men's||men", "Women's||women")
_FURNITURE_MODELS = _opts("Oslo", "Lund", "Verona", "Bergen", "Siena", "Aalto", "Malmö")

# fmt: off
CATEGORIES: tuple[Category, ...] = (
    Category("electronics.tv", ("Lumina", "Voltara", "Nordvik", "Sonaro", "Kairo", "Vistara"),
             (0.06, 0.14), (
        Kind(42, "{brand} {size} {res} {panel} Smart TV", (380, 520), ("tv", "smart-tv"), {
            "size": _opts('43"|0.7|43-inch', '50"|0.85|50-inch', '55"|1|55-inch',
                          '65"|1.45|65-inch', '75"|2|75-inch', '85"|2.8|85-inch'),
            "res": _opts("4K UHD||4k", "4K Ultra HD||4k", "4K UHD HDR|1.05|4k", "8K|2|8k"),
            "panel": _opts("LED||led", "QLED|1.35|qled", "OLED|2.1|oled",
                           "Mini-LED|1.6|mini-led"),
        }),
        Kind(4, '{brand} 32" HD Ready LED TV', (160, 220), ("tv", "32-inch", "hd")),
    )),
    Category("electronics.tv_accessories", ("Mountix", "Linkwell", "Cablo", "Sonaro", "Auralis"),
             (0.25, 0.45), (
        Kind(9, "{brand} {motion} TV Wall Mount for {range} TVs", (25, 45),
             ("tv-accessory", "wall-mount"), {
            "motion": _opts("Fixed|0.7|fixed", "Tilting||tilting", "Full-Motion|1.8|full-motion",
                            "Slim Full-Motion|2|full-motion"),
            "range": _opts('32-55"', '43-75"|1.3', '50-90"|1.6'),
        }, ("Mountix", "Linkwell", "Voltara")),
        Kind(9, "{brand} {model} {channels} Soundbar{sub}", (110, 180),
             ("tv-accessory", "soundbar", "audio"), {
            "model": _opts("Cine", "Arc", "Stage", "Pulse"),
            "channels": _opts("2.0|0.7", "2.1", "3.1|1.4", "5.1.2 Dolby Atmos|2.4|dolby-atmos"),
            "sub": _opts("", " with Wireless Subwoofer|1.3|subwoofer"),
        }, ("Sonaro", "Auralis", "Voltara", "Lumina")),
        Kind(6, "{brand} Ultra High Speed HDMI 2.1 Cable, {len}", (9, 14),
             ("tv-accessory", "hdmi-cable", "cable"),
             {"len": _opts("1 m", "2 m|1.2", "3 m|1.5", "5 m|2.2")}, ("Cablo", "Linkwell")),
        Kind(3, "{brand} {style} TV Stand", (70, 110), ("tv-accessory", "tv-stand"),
             {"style": _opts("Swivel", "Floor|1.4", "Corner|1.1")}, ("Mountix", "Holmgard")),
        Kind(3, "{brand} 4K Streaming Stick{remote}", (35, 45), ("tv-accessory", "streaming"),
             {"remote": _opts("", " with Voice Remote|1.3")}, ("Voltara", "Lumina", "Pixelon")),
    ), background=False),
    Category("electronics.laptop", ("Aeris", "Pixelon", "Tessaro", "Quantis", "Lumina"),
             (0.05, 0.12), (
        Kind(30, "{brand} {line} {size} Laptop, {cpu}, {ram}, {ssd}", (450, 600),
             ("laptop", "notebook"), {
            "line": _opts("Air", "Book|0.9", "Pro|1.5|pro", "Flex 2-in-1|1.2|2-in-1",
                          "Gaming|1.7|gaming", "Creator|1.6|creator"),
            "size": _opts('13.3"|0.95|13-inch', '14"||14-inch', '15.6"|1.05|15-inch',
                          '16"|1.15|16-inch'),
            "cpu": _opts("Core i5", "Core i7|1.3", "Ryzen 5|0.95", "Ryzen 7|1.25"),
            "ram": _opts("8 GB RAM|0.9|8gb-ram", "16 GB RAM|1.15|16gb-ram",
                         "32 GB RAM|1.5|32gb-ram"),
            "ssd": _opts("256 GB SSD|0.9", "512 GB SSD", "1 TB SSD|1.2"),
        }),
    )),
    Category("electronics.laptop_accessories", ("Linkwell", "Cablo", "Tessaro", "Quantis"),
             (0.25, 0.45), (
        Kind(5, "{brand} {type} Mouse", (18, 30), ("laptop-accessory", "mouse"),
             {"type": _opts("Wireless", "Ergonomic Wireless|1.6", "Silent Bluetooth|1.2")},
             ("Linkwell", "Tessaro", "Quantis")),
        Kind(4, "{brand} Laptop Sleeve {size}", (20, 35), ("laptop-accessory", "sleeve"),
             {"size": _opts('13"', '14"', '15.6"|1.1', '16"|1.15')}, ("Linkwell", "Bergfalke")),
        Kind(4, "{brand} USB-C Docking Station, {ports}", (45, 70), ("laptop-accessory", "dock"),
             {"ports": _opts("7-in-1", "11-in-1|1.6", "Dual 4K|2")}, ("Linkwell", "Cablo")),
        Kind(3, "{brand} {layout} Wireless Keyboard", (35, 50), ("laptop-accessory", "keyboard"),
             {"layout": _opts("Compact", "Full-Size|1.2", "Mechanical|1.9")}),
    ), background=False),
    Category("electronics.smartphone", ("Mobira", "Helix", "Pixelon", "Voltara", "Aeris"),
             (0.05, 0.12), (
        Kind(30, "{brand} {model} 5G, {storage}, {color}", (330, 420), ("smartphone", "5g"), {
            "model": _opts("Nova 12", "Nova 12 Pro|1.45|pro", "Edge 5|1.15", "Lite 8|0.6|budget",
                           "Ultra|1.9|flagship", "A54|0.75|budget", "Fold|2.4|foldable"),
            "storage": _opts("128 GB||128gb", "256 GB|1.15|256gb", "512 GB|1.4|512gb"),
            "color": _opts("Graphite", "Silver", "Ocean Blue", "Mint", "Midnight Black"),
        }),
    )),
    Category("electronics.phone_accessories", ("Linkwell", "Cablo", "Helix", "Mobira", "Voltara"),
             (0.3, 0.5), (
        Kind(7, "{brand} {type} Phone Case", (12, 18), ("phone-accessory", "case"),
             {"type": _opts("Clear", "Silicone|1.1", "Rugged|1.6", "Leather Wallet|1.8")},
             ("Linkwell", "Helix", "Mobira")),
        Kind(5, "{brand} {watt} USB-C Fast Charger", (15, 22), ("phone-accessory", "charger"),
             {"watt": _opts("20 W", "30 W|1.2", "45 W|1.5", "65 W GaN|2")},
             ("Cablo", "Linkwell", "Voltara")),
        Kind(4, "{brand} Tempered Glass Screen Protector, {pack}", (9, 14),
             ("phone-accessory", "screen-protector"), {"pack": _opts("2-Pack", "3-Pack|1.3")},
             ("Linkwell", "Helix")),
        Kind(4, "{brand} Power Bank {cap}", (22, 30), ("phone-accessory", "power-bank"),
             {"cap": _opts("10,000 mAh", "20,000 mAh|1.5")}, ("Voltara", "Cablo")),
    ), background=False),
    Category("electronics.headphones", ("Auralis", "Sonaro", "Voltara", "Helix"), (0.12, 0.25), (
        Kind(20, "{brand} {model} {type}", (60, 90), ("headphones", "audio"), {
            "model": _opts("Aura", "Quiet", "Flow", "Pulse", "Echo"),
            "type": _opts("Wireless Noise-Cancelling Headphones|2.2|noise-cancelling",
                          "True Wireless Earbuds||earbuds", "Sports Earbuds|0.8|sports",
                          "On-Ear Headphones|0.9|on-ear"),
        }),
    )),
    Category("appliances.washing_machine", ("Nordvik", "Aquanta", "Klarwerk", "Brenner"),
             (0.06, 0.12), (
        Kind(17, "{brand} {kg} Front-Loader Washing Machine, {rpm}, Energy Class {energy}",
             (420, 560), ("washing-machine", "front-loader"), {
            "kg": _opts("7 kg|0.9|7kg", "8 kg||8kg", "9 kg|1.12|9kg", "10 kg|1.25|10kg"),
            "rpm": _opts("1400 rpm", "1600 rpm|1.12"),
            "energy": _opts("A|1.15|energy-a", "B", "C|0.9"),
        }),
        Kind(3, "{brand} {kg} Top-Loader Washing Machine", (450, 520),
             ("washing-machine", "top-loader"), {"kg": _opts("6 kg|0.9|6kg", "7 kg||7kg")}),
    )),
    Category("appliances.coffee_machine",
             ("Caffaro", "Bellacasa", "Nordvik", "Brenner", "Crema & Co"), (0.08, 0.16), (
        Kind(8, "{brand} {model} Bean-to-Cup Coffee Machine{milk}", (450, 650),
             ("coffee-machine", "bean-to-cup"),
             {"model": _opts("Barista", "Aroma", "Crema", "Perfetto"),
              "milk": _opts("", " with Milk System|1.3|milk-system")},
             ("Caffaro", "Bellacasa", "Nordvik", "Brenner")),
        Kind(5, "{brand} {model} Portafilter Espresso Machine", (250, 450),
             ("coffee-machine", "espresso"), {"model": _opts("Classica", "Doppio", "Leva")},
             ("Caffaro", "Crema & Co", "Bellacasa")),
        Kind(4, "{brand} {model} Capsule Coffee Machine", (70, 120), ("coffee-machine", "capsule"),
             {"model": _opts("Mini", "Pop", "Duo")}),
        Kind(3, "{brand} Filter Coffee Maker{grinder}", (40, 70), ("coffee-machine", "filter"),
             {"grinder": _opts("", " with Grinder|1.8|grinder")}),
    )),
    Category("appliances.coffee_supplies", ("Caffaro", "Crema & Co", "Bellacasa"), (0.3, 0.5), (
        Kind(5, "{brand} {blend} Espresso Beans, 1 kg", (14, 22), ("coffee", "beans"),
             {"blend": _opts("Classico", "Intenso", "Crema", "Decaf", "Bio Arabica|1.2")}),
        Kind(3, "{brand} Descaler for Coffee Machines, {pack}", (10, 14), ("coffee", "descaler"),
             {"pack": _opts("2-Pack", "4-Pack|1.8")}),
        Kind(2, "{brand} Electric Milk Frother{extra}", (45, 70), ("coffee", "milk-frother"),
             {"extra": _opts("", " with Induction|1.3")}),
        Kind(2, "{brand} Cleaning Tablets, {pcs}", (12, 16), ("coffee", "cleaning"),
             {"pcs": _opts("100 pcs", "250 pcs|2")}),
    ), background=False),
    Category("appliances.vacuum", ("Zyklon", "Klarwerk", "Nordvik", "AirSwift"), (0.08, 0.16), (
        Kind(15, "{brand} {model} {type}", (200, 320), ("vacuum",), {
            "model": _opts("Swift", "Turbo", "Clean", "Storm"),
            "type": _opts("Cordless Stick Vacuum||cordless", "Robot Vacuum|1.3|robot",
                          "Robot Vacuum & Mop|1.7|robot", "Bagless Canister Vacuum|0.6|canister"),
        }),
    )),
    Category("services.repair", ("FixPro", "RepairHub", "ServiceStar", "HomeHelp"), (0.35, 0.55), (
        Kind(1, "{brand} TV Repair Service (On-Site)", (89, 119), ("service", "repair", "tv")),
        Kind(1, "{brand} TV Screen & Panel Repair", (149, 199),
             ("service", "repair", "tv", "screen")),
        Kind(1, "{brand} TV Repair Pick-Up & Return", (69, 99), ("service", "repair", "tv")),
        Kind(1, "{brand} Washing Machine Repair Service", (79, 109),
             ("service", "repair", "washing-machine")),
        Kind(1, "{brand} Washing Machine Express Repair (48 h)", (119, 149),
             ("service", "repair", "washing-machine")),
        Kind(1, "{brand} Laptop Repair & Diagnosis", (59, 89), ("service", "repair", "laptop")),
        Kind(1, "{brand} Smartphone Screen Repair", (79, 149),
             ("service", "repair", "smartphone")),
        Kind(1, "{brand} Coffee Machine Repair & Descaling", (49, 79),
             ("service", "repair", "coffee-machine")),
    ), background=False),
    Category("services.installation", ("FixPro", "HomeHelp", "ServiceStar"), (0.35, 0.55), (
        Kind(1, "{brand} TV Wall Mounting Service", (79, 99), ("service", "installation", "tv")),
        Kind(1, "{brand} Home Cinema Setup", (129, 159), ("service", "installation", "tv")),
        Kind(1, "{brand} Washing Machine Installation & Old Appliance Removal", (59, 79),
             ("service", "installation", "washing-machine")),
        Kind(1, "{brand} Furniture Assembly Service", (49, 89),
             ("service", "installation", "furniture")),
        Kind(1, "{brand} Smartphone Data Transfer & Setup", (29, 39),
             ("service", "installation", "smartphone")),
    ), background=False),
    Category("outdoor.hiking_boots", ("Alpenwerk", "Trailmark", "Summitra", "Vettore", "Bergfalke"),
             (0.15, 0.3), (
        Kind(22, "{brand} {model} {height} Hiking Boots{gtx}, {gender}", (110, 160),
             ("hiking", "boots"), {
            "model": _opts("Ridge", "Karst", "Summit", "Talus", "Moraine", "Gipfel"),
            "height": _opts("Mid", "Low|0.85|low-cut", "High|1.15"),
            "gtx": _opts("", " GTX|1.25|waterproof", " Waterproof|1.2|waterproof"),
            "gender": _GENDER,
        }),
    )),
    Category("outdoor.backpack", ("Alpenwerk", "Bergfalke", "Summitra", "Northpeak"), (0.15, 0.3), (
        Kind(16, "{brand} {model} {liters} Hiking Backpack", (70, 100), ("hiking", "backpack"), {
            "model": _opts("Trail", "Alpin", "Ascent", "Kamm"),
            "liters": _opts("20 L|0.8|daypack", "30 L||30l", "40 L|1.2|40l", "55 L|1.5|trekking",
                            "65+10 L|1.8|trekking"),
        }),
    )),
    Category("outdoor.jacket", ("Alpenwerk", "Bergfalke", "Summitra", "Northpeak"), (0.15, 0.3), (
        Kind(16, "{brand} {model} {type} Jacket, {gender}", (120, 180), ("outdoor", "jacket"), {
            "model": _opts("Storm", "Föhn", "Ridge", "Cirrus"),
            "type": _opts("Hardshell|1.4|waterproof", "Rain|0.8|rain", "Softshell||softshell",
                          "Down|1.3|insulated", "Fleece|0.6|fleece"),
            "gender": _GENDER,
        }),
    )),
    Category("outdoor.socks", ("Alpenwerk", "Summitra", "Trailmark"), (0.3, 0.5), (
        Kind(10, "{brand} Merino {type} Socks, {pack}", (14, 19), ("hiking", "socks", "merino"), {
            "type": _opts("Hiking", "Trekking|1.1", "Light Hiking|0.9"),
            "pack": _opts("1 Pair", "2-Pack|1.8", "3-Pack|2.5"),
        }),
    ), background=False),
    Category("outdoor.tent", ("Bergfalke", "Summitra", "Northpeak", "Alpenwerk"), (0.12, 0.25), (
        Kind(12, "{brand} {model} {persons} {season} Tent", (150, 230), ("camping", "tent"), {
            "model": _opts("Basecamp", "Nomad", "Lago", "Fjell"),
            "persons": _opts("1-Person|0.8", "2-Person", "3-Person|1.3", "4-Person|1.6",
                             "6-Person Family|2.2|family"),
            "season": _opts("3-Season", "4-Season|1.6|4-season", "Ultralight|1.4|ultralight"),
        }),
    )),
    Category("outdoor.sleeping_bag", ("Bergfalke", "Summitra", "Northpeak"), (0.12, 0.25), (
        Kind(10, "{brand} {model} {fill} Sleeping Bag, Comfort {temp}", (70, 110),
             ("camping", "sleeping-bag"), {
            "model": _opts("Nacht", "Cocoon", "Polar"),
            "fill": _opts("Down|1.6|down", "Synthetic"),
            "temp": _opts("+5 °C", "0 °C|1.1", "-5 °C|1.3", "-10 °C|1.5|winter"),
        }),
    )),
    Category("outdoor.camping_gear", ("Northpeak", "Summitra", "Bergfalke"), (0.15, 0.3), (
        Kind(3, "{brand} Compact Gas Camping Stove{extra}", (35, 55), ("camping", "stove"),
             {"extra": _opts("", " with Piezo Ignition|1.2")}),
        Kind(2, "{brand} Rechargeable LED Camping Lantern", (25, 40), ("camping", "lantern")),
        Kind(3, "{brand} Self-Inflating Sleeping Mat, {thick}", (45, 60),
             ("camping", "sleeping-mat"), {"thick": _opts("3 cm", "5 cm|1.3", "8 cm|1.7")}),
        Kind(2, "{brand} Titanium Cook Set, {pcs}", (40, 60), ("camping", "cookware"),
             {"pcs": _opts("3 pcs", "5 pcs|1.5")}),
    )),
    Category("sports.running_shoes", ("Stridex", "Trailmark", "Velocita", "Pacer"), (0.15, 0.3), (
        Kind(20, "{brand} {model} {type} Running Shoes, {gender}", (100, 140),
             ("running", "shoes"), {
            "model": _opts("Aero", "Glide", "Tempo", "Drift", "Sprint", "Volt"),
            "type": _opts("Road", "Trail|1.1|trail", "Racing|1.5|racing",
                          "Cushioned|1.15|cushioned"),
            "gender": _GENDER,
        }),
    )),
    Category("sports.running_apparel", ("Stridex", "Velocita", "Pacer"), (0.3, 0.5), (
        Kind(12, "{brand} {type}, {gender}", (25, 35), ("running", "apparel"), {
            "type": _opts("Running Shirt", "Running Shorts", "Running Tights|1.4",
                          "Lightweight Running Jacket|2.3|jacket",
                          "Running Socks 3-Pack|0.6|socks"),
            "gender": _GENDER,
        }),
    ), background=False),
    Category("sports.fitness_tracker", ("Pacer", "Helix", "Velocita", "Voltara"), (0.1, 0.2), (
        Kind(10, "{brand} {model} GPS Running Watch{extra}", (150, 230), ("running", "gps-watch"), {
            "model": _opts("Pace 3", "Stride 5", "Tempo X", "Vector 2"),
            "extra": _opts("", " with Heart-Rate Sensor|1.3|heart-rate", " Solar|1.8|solar"),
        }),
    )),
    Category("home.furniture", ("Holmgard", "Casa Linea", "Bellacasa", "Fjordhus"), (0.15, 0.3), (
        Kind(5, "{brand} {model} {seats} Sofa, {fabric}", (500, 750), ("furniture", "sofa"), {
            "model": _FURNITURE_MODELS,
            "seats": _opts("2-Seater|0.8", "3-Seater", "Corner|1.6|corner-sofa"),
            "fabric": _opts("Grey Fabric", "Beige Bouclé|1.1", "Blue Velvet|1.15",
                            "Cognac Leather|1.7|leather"),
        }),
        Kind(5, "{brand} {model} {type} Desk, {size}", (150, 220), ("furniture", "desk"), {
            "model": _FURNITURE_MODELS,
            "type": _opts("Height-Adjustable|1.8|standing-desk", "Writing", "Corner|1.2"),
            "size": _opts("120x60 cm", "140x70 cm|1.1", "160x80 cm|1.25"),
        }),
        Kind(5, "{brand} {model} Ergonomic Office Chair{opt}", (180, 260),
             ("furniture", "office-chair"),
             {"model": _FURNITURE_MODELS, "opt": _opts("", " with Headrest|1.2", ", Mesh|0.9")}),
        Kind(4, "{brand} {model} Bookshelf, {shelves}", (90, 140), ("furniture", "bookshelf"), {
            "model": _FURNITURE_MODELS,
            "shelves": _opts("4 Shelves", "5 Shelves|1.2", "Wall Unit|1.8"),
        }),
        Kind(4, "{brand} {model} Dining Table, {wood}", (350, 500), ("furniture", "dining-table"), {
            "model": _FURNITURE_MODELS,
            "wood": _opts("Oak|1.3|oak", "Walnut|1.5", "White", "Extendable Oak|1.7|oak"),
        }),
        Kind(3, "{brand} {model} Bed Frame, {size}", (300, 450), ("furniture", "bed"), {
            "model": _FURNITURE_MODELS,
            "size": _opts("140x200 cm", "160x200 cm|1.15", "180x200 cm|1.3"),
        }),
    )),
    Category("home.lighting", ("Lichtwerk", "Fjordhus", "Casa Linea"), (0.2, 0.35), (
        Kind(12, "{brand} {model} {type}", (60, 120), ("lighting",), {
            "model": _opts("Luna", "Kegel", "Arco", "Nimbus"),
            "type": _opts("LED Floor Lamp||floor-lamp", "LED Desk Lamp|0.5|desk-lamp",
                          "Pendant Light|0.9|pendant", "Smart Ceiling Light|1.2|smart"),
        }),
    )),
)
# fmt: on
"""The shop's categories; accessories and services are not background (never noise)."""


# --------------------------------------------------------------------------------------
# What shoppers type: phrasings per query pool and language, most frequent first
# --------------------------------------------------------------------------------------

LANGUAGES: tuple[tuple[str, float], ...] = (("de", 0.45), ("en", 0.35), ("it", 0.20))
"""Each user's language and its share; a user types in another one now and then."""

PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "tv": ("55", "65", "50", "43", "75"),
    "kg": ("8", "9", "7", "10"),
    "shoe": ("42", "43", "44", "41", "40", "39", "45", "38", "46"),
    "liters": ("30", "20", "40"),
    "gb": ("256", "128"),
    "persons": ("2", "3", "4"),
}
"""Values for ``{name}`` in phrasings (most frequent first)."""

# fmt: off
QUERIES: dict[str, dict[str, tuple[str, ...]]] = {
    "tv_repair": {
        "de": ("fernseher reparatur", "fernseher kaputt", "Fernseher kaputt reparieren",
               "tv reparatur", "fernseher reparieren lassen", "fernseher geht nicht mehr an",
               "fernseher bild schwarz ton da", "fernseher reparatur in der nähe",
               "fernseher display kaputt", "fernseher streifen im bild",
               "fernseher reparatur kosten", "reparaturservice fernseher"),
        "en": ("tv repair", "tv repair near me", "tv screen broken fix", "tv won't turn on",
               "television repair service", "tv black screen sound works",
               "tv screen repair cost", "lines on tv screen", "fix broken tv",
               "tv power light blinking"),
        "it": ("riparazione tv", "riparazione televisore", "televisore non si accende",
               "tv schermo rotto", "riparare televisore", "assistenza tv vicino a me",
               "tv schermo nero audio funziona", "costo riparazione tv"),
    },
    "tv_shop": {
        "de": ("fernseher {tv} zoll", "4k fernseher", "fernseher kaufen", "smart tv {tv} zoll",
               "oled fernseher", "fernseher angebot", "fernseher günstig", "qled fernseher test",
               "neuer fernseher", "fernseher {tv} zoll 4k"),
        "en": ("4k tv", "{tv} inch tv", "smart tv deals", "oled tv", "best {tv} inch tv",
               "cheap 4k tv", "qled tv", "new tv", "tv sale"),
        "it": ("televisore {tv} pollici", "tv {tv} pollici 4k", "smart tv offerta",
               "televisore oled", "tv 4k economico", "televisore smart", "tv qled"),
    },
    "tv_accessories": {
        "de": ("wandhalterung fernseher", "soundbar", "hdmi kabel", "tv wandhalterung schwenkbar",
               "soundbar mit subwoofer", "fernseher montage"),
        "en": ("tv wall mount", "soundbar for tv", "hdmi cable 4k", "full motion tv mount",
               "soundbar with subwoofer"),
        "it": ("staffa tv a muro", "soundbar tv", "cavo hdmi", "supporto tv orientabile"),
    },
    "washer_repair": {
        "de": ("waschmaschine reparatur", "waschmaschine kaputt", "waschmaschine pumpt nicht ab",
               "waschmaschine schleudert nicht", "waschmaschine reparieren lassen",
               "waschmaschine fehlercode", "waschmaschine verliert wasser",
               "waschmaschine reparatur kosten"),
        "en": ("washing machine repair", "washer not draining", "washing machine won't spin",
               "washing machine repair near me", "washer leaking fix",
               "washing machine error code"),
        "it": ("lavatrice riparazione", "riparazione lavatrice", "lavatrice non scarica",
               "lavatrice non centrifuga", "riparazione lavatrice vicino a me",
               "lavatrice perde acqua"),
    },
    "washer_shop": {
        "de": ("waschmaschine {kg} kg", "waschmaschine kaufen", "frontlader waschmaschine",
               "waschmaschine angebot", "waschmaschine energieeffizienz a", "leise waschmaschine"),
        "en": ("washing machine {kg}kg", "washing machine deals", "front load washer",
               "quiet washing machine", "best washing machine"),
        "it": ("lavatrice {kg} kg", "lavatrice offerta", "lavatrice carica frontale",
               "lavatrice classe a"),
    },
    "hiking": {
        "de": ("wanderschuhe", "wanderschuhe herren", "Wanderschuhe Größe {shoe}",
               "wanderschuhe damen wasserdicht", "wanderrucksack", "wanderrucksack {liters}l",
               "wanderjacke", "trekkingschuhe", "bergschuhe", "regenjacke wandern"),
        "en": ("hiking boots", "waterproof hiking boots", "hiking backpack", "hiking jacket",
               "trail boots men", "hiking boots women", "lightweight hiking backpack {liters}l",
               "rain jacket hiking"),
        "it": ("scarpe da trekking", "scarpe trekking uomo", "zaino trekking", "giacca trekking",
               "scarponi montagna", "scarpe trekking donna impermeabili"),
    },
    "hiking_more": {
        "de": ("wandersocken", "merino socken", "tagesrucksack"),
        "en": ("hiking socks", "merino socks", "daypack"),
        "it": ("calze trekking", "zaino giornaliero"),
    },
    "laptop": {
        "de": ("laptop", "laptop 16gb ram", "notebook kaufen", "laptop für studium",
               "gaming laptop", "ultrabook 14 zoll", "laptop angebot", "leichter laptop"),
        "en": ("laptop", "laptop for students", "gaming laptop", "14 inch ultrabook",
               "laptop 16gb ram ssd", "best laptop for work"),
        "it": ("portatile", "computer portatile offerta", "notebook 15 pollici",
               "portatile per studenti", "pc portatile gaming"),
    },
    "laptop_more": {
        "de": ("laptop tasche", "usb c dock", "kabellose maus"),
        "en": ("laptop sleeve", "wireless mouse", "usb-c docking station"),
        "it": ("custodia portatile", "mouse wireless"),
    },
    "smartphone": {
        "de": ("handy kaufen", "smartphone {gb}gb", "neues handy", "smartphone test",
               "handy mit guter kamera", "5g handy angebot", "smartphone günstig"),
        "en": ("smartphone", "new phone", "best camera phone", "5g phone deals", "phone {gb}gb",
               "cheap smartphone"),
        "it": ("cellulare offerta", "smartphone economico", "nuovo telefono", "smartphone {gb}gb",
               "telefono 5g"),
    },
    "phone_more": {
        "de": ("handyhülle", "ladegerät usb c", "panzerglas"),
        "en": ("phone case", "fast charger", "screen protector"),
        "it": ("cover telefono", "caricatore rapido"),
    },
    "coffee": {
        "de": ("kaffeevollautomat", "siebträgermaschine", "kaffeemaschine mit mahlwerk",
               "kaffeevollautomat test", "espressomaschine", "kaffeemaschine angebot"),
        "en": ("espresso machine", "bean to cup coffee machine", "coffee machine with grinder",
               "best espresso machine", "coffee maker"),
        "it": ("macchina caffè", "macchina da caffè automatica", "macchina espresso",
               "macchina caffè in grani"),
    },
    "coffee_more": {
        "de": ("kaffeebohnen", "entkalker", "milchaufschäumer"),
        "en": ("coffee beans", "descaler", "milk frother"),
        "it": ("caffè in grani", "decalcificante"),
    },
    "running": {
        "de": ("laufschuhe", "laufschuhe damen", "laufschuhe herren", "trailrunning schuhe",
               "marathon schuhe", "laufuhr"),
        "en": ("running shoes", "trail running shoes", "running shoes women", "marathon shoes",
               "gps running watch"),
        "it": ("scarpe da corsa", "scarpe running uomo", "scarpe running donna",
               "scarpe trail running"),
    },
    "running_more": {
        "de": ("laufshirt", "laufhose", "laufsocken"),
        "en": ("running shirt", "running shorts"),
        "it": ("maglia running", "pantaloncini running"),
    },
    "camping": {
        "de": ("zelt {persons} personen", "campingzelt", "schlafsack", "camping ausrüstung",
               "zelt wasserdicht", "campingkocher", "isomatte"),
        "en": ("tent {persons} person", "camping tent", "sleeping bag", "camping gear",
               "camping stove", "backpacking tent"),
        "it": ("tenda campeggio", "tenda {persons} posti", "sacco a pelo",
               "attrezzatura campeggio", "fornellino campeggio"),
    },
    "furniture": {
        "de": ("sofa", "ecksofa", "schreibtisch höhenverstellbar", "bürostuhl", "bücherregal",
               "esstisch", "bett 160x200"),
        "en": ("sofa", "corner sofa", "standing desk", "office chair", "bookshelf",
               "dining table"),
        "it": ("divano", "divano angolare", "scrivania regolabile", "sedia ufficio", "libreria",
               "tavolo da pranzo"),
    },
    "furniture_more": {
        "de": ("stehlampe", "schreibtischlampe", "möbel aufbau service"),
        "en": ("floor lamp", "desk lamp", "furniture assembly"),
        "it": ("lampada da terra", "montaggio mobili"),
    },
}
# fmt: on
"""Search phrasings; a Zipf-like weight makes the first ones common and the last ones rare."""


@dataclass(frozen=True)
class Target:
    """Where views go: a category, optionally only its items with a tag; ``*`` is any main item."""

    category: str
    tag: str = ""
    weight: float = 1.0


# fmt: off
HINTS: tuple[tuple[tuple[str, ...], Target], ...] = (
    (("laufuhr", "watch"), Target("sports.fitness_tracker")),
    (("laufschuh", "running shoe", "corsa", "scarpe running", "trail running", "marathon"),
     Target("sports.running_shoes")),
    (("socken", "socks", "calze"), Target("outdoor.socks")),
    (("rucksack", "backpack", "zaino", "daypack"), Target("outdoor.backpack")),
    (("jacke", "jacket", "giacca"), Target("outdoor.jacket")),
    (("wanderschuh", "trekkingschuh", "bergschuh", "boots", "scarpe", "scarponi"),
     Target("outdoor.hiking_boots")),
    (("zelt", "tent", "tenda"), Target("outdoor.tent")),
    (("schlafsack", "sleeping bag", "sacco a pelo"), Target("outdoor.sleeping_bag")),
    (("kocher", "stove", "fornellino", "isomatte"), Target("outdoor.camping_gear")),
    (("soundbar",), Target("electronics.tv_accessories", "soundbar")),
    (("wandhalterung", "mount", "staffa", "supporto"),
     Target("electronics.tv_accessories", "wall-mount")),
    (("hdmi",), Target("electronics.tv_accessories", "hdmi-cable")),
    (("sofa", "divano"), Target("home.furniture", "sofa")),
    (("schreibtisch", "desk", "scrivania"), Target("home.furniture", "desk")),
    (("stuhl", "chair", "sedia"), Target("home.furniture", "office-chair")),
    (("regal", "bookshelf", "libreria"), Target("home.furniture", "bookshelf")),
    (("esstisch", "dining", "tavolo"), Target("home.furniture", "dining-table")),
    (("bett",), Target("home.furniture", "bed")),
    (("lampe", "lamp", "lampada"), Target("home.lighting")),
    (("hülle", "case", "cover"), Target("electronics.phone_accessories", "case")),
    (("lade", "charger", "caricatore"), Target("electronics.phone_accessories", "charger")),
    (("panzerglas", "protector"), Target("electronics.phone_accessories", "screen-protector")),
    (("maus", "mouse"), Target("electronics.laptop_accessories", "mouse")),
    (("dock",), Target("electronics.laptop_accessories", "dock")),
    (("tasche", "sleeve", "custodia"), Target("electronics.laptop_accessories", "sleeve")),
    (("bohnen", "beans", "grani"), Target("appliances.coffee_supplies", "beans")),
    (("entkalk", "descal", "decalcific"), Target("appliances.coffee_supplies", "descaler")),
    (("aufschäumer", "frother"), Target("appliances.coffee_supplies", "milk-frother")),
    (("siebträger", "espresso"), Target("appliances.coffee_machine", "espresso")),
    (("vollautomat", "bean to cup", "automatica", "in grani", "mahlwerk", "grinder"),
     Target("appliances.coffee_machine", "bean-to-cup")),
    (("oled",), Target("electronics.tv", "oled")),
    (("qled",), Target("electronics.tv", "qled")),
    (("gaming",), Target("electronics.laptop", "gaming")),
)
# fmt: on
"""Words in a search that steer the next views (when the phase looks at that category)."""
HINT_SHARE = 0.7  # share of views after a search that follow its hint

# --------------------------------------------------------------------------------------
# Why shoppers come: intents as journeys of phases
# --------------------------------------------------------------------------------------

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
SESSION_GAP = 30 * MINUTE  # a pause this long starts a new session
WINDOW = 28 * DAY  # every history fits between start and start + WINDOW


@dataclass(frozen=True)
class Phase:
    """One step of a journey: searches, then views of targets, maybe cart, purchase, review."""

    queries: str = ""  # key of QUERIES
    searches: tuple[int, int] = (0, 0)
    targets: tuple[Target, ...] = ()
    views: tuple[int, int] = (0, 0)
    cart: float = 0.0  # chance to put a viewed item into the cart
    buy: float = 0.0  # chance that the carted item is bought
    review: float = 0.0  # chance of a review some days after the purchase
    chance: float = 1.0  # chance that the phase happens at all
    gap: tuple[float, float] = (20.0, 300.0)  # seconds after the previous phase (log-uniform)
    after_purchase: bool = False  # only if this journey already bought something
    split: float = 0.0  # chance that the views spread over two sessions


@dataclass(frozen=True)
class Intent:
    """Why a user comes: journey variants (weight, phases) and the share of users with it."""

    name: str
    share: float
    variants: tuple[tuple[float, tuple[Phase, ...]], ...]

    @property
    def categories(self) -> frozenset[str]:
        """Categories this intent's journeys view (kept out of the user's background noise)."""
        return frozenset(
            t.category
            for _, phases in self.variants
            for p in phases
            for t in p.targets
            if t.category != "*"
        )


T = Target
Variants = tuple[tuple[float, tuple[Phase, ...]], ...]


def _product(queries: str, targets: tuple[Target, ...], later: Phase) -> Variants:
    """The common journey: research and buy a product, later look at what goes with it."""
    research = Phase(queries, (1, 3), targets, (3, 8), cart=0.75, buy=0.85, review=0.3, split=0.3)
    return ((1.0, (research, later)),)


# fmt: off
_TV_SHOPPING = Phase("tv_shop", (1, 3), (T("electronics.tv"),), (3, 8), cart=0.85, buy=0.9,
                     review=0.3, gap=(MINUTE, 2 * DAY), split=0.3)
_TV_ACCESSORIES = Phase(
    "tv_accessories", (0, 1),
    (T("electronics.tv_accessories", weight=0.9), T("services.installation", "tv", 0.1)), (1, 4),
    cart=0.45, buy=0.8, review=0.15, chance=0.85, gap=(2 * HOUR, 4 * DAY), after_purchase=True,
)
_WASHER_REPAIR = Phase("washer_repair", (1, 3), gap=(0.0, 0.0))

INTENTS: tuple[Intent, ...] = (
    Intent("broken_tv", 0.14, ((1.0, (
        Phase("tv_repair", (1, 3), gap=(0.0, 0.0)),
        Phase(targets=(T("services.repair", "tv"),), views=(1, 1), chance=0.15,
              gap=(20.0, 5 * MINUTE)),
        _TV_SHOPPING,
        _TV_ACCESSORIES,
    )),)),
    Intent("tv_upgrade", 0.07, ((1.0, (
        Phase("tv_shop", (0, 1), (T("electronics.tv"),), (2, 5), chance=0.6),
        Phase("tv_shop", (1, 2), (T("electronics.tv"),), (3, 8), cart=0.8, buy=0.85, review=0.3,
              gap=(6 * HOUR, 5 * DAY), split=0.2),
        _TV_ACCESSORIES,
    )),)),
    Intent("broken_washer", 0.08, (
        (0.4, (  # the repair service is booked
            _WASHER_REPAIR,
            Phase(targets=(T("services.repair", "washing-machine"),), views=(1, 3), cart=0.8,
                  buy=0.9, review=0.3),
        )),
        (0.6, (  # a new machine instead
            _WASHER_REPAIR,
            Phase(targets=(T("services.repair", "washing-machine"),), views=(1, 1), chance=0.3),
            Phase("washer_shop", (1, 2), (T("appliances.washing_machine"),), (3, 7), cart=0.85,
                  buy=0.9, review=0.3, gap=(MINUTE, DAY)),
            Phase(targets=(T("services.installation", "washing-machine"),), views=(1, 1),
                  chance=0.3, after_purchase=True, cart=0.5, buy=0.9, gap=(30.0, 10 * MINUTE)),
        )),
    )),
    Intent("hiking", 0.13, _product(
        "hiking",
        (T("outdoor.hiking_boots", weight=0.6), T("outdoor.backpack", weight=0.25),
         T("outdoor.jacket", weight=0.15)),
        Phase("hiking_more", (0, 1),
              (T("outdoor.socks", weight=0.4), T("outdoor.backpack", weight=0.35),
               T("outdoor.jacket", weight=0.25)),
              (1, 4), cart=0.4, buy=0.8, review=0.2, gap=(DAY, 6 * DAY), after_purchase=True),
    )),
    Intent("laptop", 0.09, _product(
        "laptop", (T("electronics.laptop"),),
        Phase("laptop_more", (0, 1), (T("electronics.laptop_accessories"),), (1, 3), cart=0.35,
              buy=0.85, gap=(HOUR, 4 * DAY), after_purchase=True),
    )),
    Intent("smartphone", 0.10, _product(
        "smartphone", (T("electronics.smartphone"),),
        Phase("phone_more", (0, 1),
              (T("electronics.phone_accessories", weight=0.6),
               T("electronics.headphones", weight=0.3),
               T("services.installation", "smartphone", 0.1)),
              (1, 4), cart=0.5, buy=0.85, gap=(10 * MINUTE, 2 * DAY), after_purchase=True),
    )),
    Intent("coffee", 0.08, _product(
        "coffee", (T("appliances.coffee_machine"),),
        Phase("coffee_more", (0, 1), (T("appliances.coffee_supplies"),), (1, 3), cart=0.5, buy=0.9,
              review=0.2, gap=(DAY, 7 * DAY), after_purchase=True),
    )),
    Intent("running", 0.08, _product(
        "running",
        (T("sports.running_shoes", weight=0.85), T("sports.fitness_tracker", weight=0.15)),
        Phase("running_more", (0, 1), (T("sports.running_apparel"),), (1, 3), cart=0.4, buy=0.85,
              gap=(HOUR, 5 * DAY), after_purchase=True),
    )),
    Intent("camping", 0.07, _product(
        "camping",
        (T("outdoor.tent", weight=0.5), T("outdoor.sleeping_bag", weight=0.3),
         T("outdoor.camping_gear", weight=0.2)),
        Phase("camping", (0, 1),
              (T("outdoor.camping_gear", weight=0.6), T("outdoor.sleeping_bag", weight=0.4)),
              (1, 3), cart=0.4, buy=0.85, gap=(HOUR, 4 * DAY), after_purchase=True),
    )),
    Intent("furniture", 0.07, _product(
        "furniture", (T("home.furniture"),),
        Phase("furniture_more", (0, 1),
              (T("home.lighting", weight=0.7), T("services.installation", "furniture", 0.3)),
              (1, 3), cart=0.3, buy=0.85, gap=(HOUR, 5 * DAY), after_purchase=True),
    )),
    Intent("browser", 0.09, ((1.0, (
        Phase(targets=(T("*"),), views=(4, 8)),
        Phase(targets=(T("*"),), views=(3, 8), chance=0.6, gap=(3 * HOUR, 5 * DAY)),
        Phase(targets=(T("*"),), views=(3, 6), chance=0.3, gap=(3 * HOUR, 5 * DAY)),
    )),)),
)
# fmt: on
"""Intents with their shares (they add up to 1)."""

EXCLUSIVE: frozenset[frozenset[str]] = frozenset({frozenset({"broken_tv", "tv_upgrade"})})
"""Intent pairs no user has together."""

TWO_INTENTS = 0.3  # share of users with two intents (in separate sessions)
APP_SHARE = 0.4  # share of users who mostly use the app
CHANNEL_SWITCH = 0.15  # chance that a new session uses the other channel
NOISE = 0.15  # chance that a session opens with 1-2 views of popular items
REVISIT = 0.2  # chance that a view returns to an item seen in the same phase
SAME_SESSION_PURCHASE = 0.75  # else the purchase happens in a later session
MIN_EVENTS, MAX_EVENTS = 5, 40
ZIPF = 1.1  # popularity exponent of items within a category and of phrasings within a pool
OFFER_SHARE = 0.9
DISCOUNTS: tuple[tuple[int, float], ...] = (
    (10, 0.3),
    (15, 0.25),
    (5, 0.15),
    (20, 0.15),
    (25, 0.1),
    (30, 0.05),
)
RATINGS_SPREAD = 0.9  # rating = item quality + normal noise with this deviation

# Within-session pauses (seconds, log-uniform) by (previous action, next action).
_PAUSE: dict[tuple[str, str], tuple[float, float]] = {
    ("search", "search"): (8, 90),
    ("search", "page_view"): (4, 45),
    ("page_view", "page_view"): (15, 300),
    ("page_view", "search"): (10, 120),
    ("page_view", "add_to_cart"): (10, 180),
    ("add_to_cart", "purchase"): (45, 900),
    ("add_to_cart", "page_view"): (10, 120),
    ("purchase", "page_view"): (20, 300),
}

FILES = ("catalog.jsonl", "offers.jsonl", "events.jsonl", "intents.jsonl")
"""What :func:`generate` writes, in this order."""

# --------------------------------------------------------------------------------------
# Building the catalog
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    item_id: str
    title: str
    category: str
    brand: str
    price: float
    tags: tuple[str, ...]
    quality: float  # mean rating of reviews


def _cumulative(weights: Iterable[float]) -> list[float]:
    """Running sums of weights (for bisect and :func:`random.Random.choices`)."""
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _zipf(n: int, exponent: float = ZIPF) -> list[float]:
    """Cumulative Zipf weights for ranks 1..n."""
    return _cumulative(rank**-exponent for rank in range(1, n + 1))


def _pick(rng: random.Random, cum: Sequence[float]) -> int:
    """An index drawn by cumulative weights (faster than ``choices`` for one draw)."""
    return bisect.bisect_right(cum, rng.random() * cum[-1])


def _shop_price(value: float) -> float:
    """A price as shops write them: 549.99, 24.99, 8.99."""
    if value >= 100:
        return round(round(value / 10) * 10 - 0.01, 2)
    return round(max(round(value), 2) - 0.01, 2)


def _build_items(rng: random.Random) -> list[_Item]:
    """All catalog items, with distinct SKU ids that do not reveal the category."""
    total = sum(k.count for c in CATEGORIES for k in c.kinds)
    ids = rng.sample(range(10000, 100000), total)
    items: list[_Item] = []
    for cat in CATEGORIES:
        titles: set[str] = set()
        for kind in cat.kinds:
            brands = kind.brands or cat.brands
            for _ in range(kind.count):
                for attempt in range(40):
                    brand = rng.choice(brands)
                    values = {name: rng.choice(options) for name, options in kind.slots.items()}
                    title = kind.template.format(
                        brand=brand, **{n: v[0] for n, v in values.items()}
                    )
                    if title not in titles:
                        break
                    if attempt == 39:
                        code = f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randint(10, 99)}"
                        title = f"{title} ({code})"
                titles.add(title)
                price = rng.uniform(*kind.price)
                tags = list(kind.tags)
                for value in values.values():
                    price *= value[1]
                    if value[2] and value[2] not in tags:
                        tags.append(value[2])
                items.append(
                    _Item(
                        item_id=f"SKU-{ids[len(items)]}",
                        title=title,
                        category=cat.name,
                        brand=brand,
                        price=_shop_price(price),
                        tags=tuple(tags),
                        quality=rng.uniform(3.0, 4.8),
                    )
                )
    return items


class _Pool:
    """Items to draw from with Zipf-like popularity (cumulative weights for bisect)."""

    def __init__(self, items: Sequence[_Item], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cum = _cumulative(weights)

    def draw(self, rng: random.Random) -> _Item:
        return self.items[_pick(rng, self.cum)]


class _Shop:
    """The catalog with popularity: pools per target, a background pool of main items."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"zmot-synthetic:{seed}:catalog")
        self.items = _build_items(rng)
        self.by_id = {item.item_id: item for item in self.items}
        self.categories = {c.name: c for c in CATEGORIES}
        self.margin = {
            item.item_id: rng.uniform(*self.categories[item.category].margin) for item in self.items
        }
        self.popularity: dict[str, float] = {}
        by_category: dict[str, list[_Item]] = {}
        for item in self.items:
            by_category.setdefault(item.category, []).append(item)
        for members in by_category.values():
            ranked = list(members)
            rng.shuffle(ranked)
            for rank, item in enumerate(ranked, start=1):
                self.popularity[item.item_id] = rank**-ZIPF
        self.by_category = by_category
        self._pools: dict[tuple[str, str], _Pool] = {}
        background = [i for i in self.items if self.categories[i.category].background]
        # Each main category gets the same traffic; inside it, Zipf decides.
        share = {
            name: sum(self.popularity[i.item_id] for i in members)
            for name, members in by_category.items()
        }
        self.background = _Pool(
            background, [self.popularity[i.item_id] / share[i.category] for i in background]
        )

    def pool(self, target: Target) -> _Pool:
        """The pool of a target (cached)."""
        key = (target.category, target.tag)
        pool = self._pools.get(key)
        if pool is None:
            if target.category == "*":
                pool = self.background
            else:
                members = self.by_category[target.category]
                if target.tag:  # a tag no item of this catalog has: the whole category
                    members = [i for i in members if target.tag in i.tags] or members
                pool = _Pool(members, [self.popularity[i.item_id] for i in members])
            self._pools[key] = pool
        return pool


# --------------------------------------------------------------------------------------
# Acting out journeys
# --------------------------------------------------------------------------------------

_QUERY_WEIGHTS: dict[tuple[str, str], tuple[tuple[str, ...], list[float]]] = {
    (pool, lang): (phrases, _zipf(len(phrases), 0.9))
    for pool, langs in QUERIES.items()
    for lang, phrases in langs.items()
}
_UMLAUTS = tuple(zip("äöüßÄÖÜ", ("ae", "oe", "ue", "ss", "Ae", "Oe", "Ue"), strict=True))
_PLACEHOLDER_CUM = {name: _zipf(len(values), 0.8) for name, values in PLACEHOLDERS.items()}
_INTENT_CUM = _cumulative(i.share for i in INTENTS)
_LANG_CUM = _cumulative(w for _, w in LANGUAGES)
_DISCOUNT_CUM = _cumulative(w for _, w in DISCOUNTS)


def _hint(query: str, categories: set[str]) -> Target | None:
    """The target a search asks for, if it is one the current phase looks at."""
    text = query.lower()
    for words, target in HINTS:
        if target.category in categories and any(w in text for w in words):
            return target
    return None


def _loguniform(rng: random.Random, lo: float, hi: float) -> float:
    """A pause between lo and hi seconds, short ones more likely (log-uniform)."""
    if hi <= lo:
        return lo
    lo = max(lo, 1.0)
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _typo(rng: random.Random, text: str) -> str:
    """One keyboard slip in a word of four letters or more: swap, drop or double a letter."""
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long_words:
        return text
    wi = rng.choice(long_words)
    w = words[wi]
    pos = rng.randrange(1, len(w) - 1)
    kind = rng.random()
    if kind < 0.4:
        w = w[:pos] + w[pos + 1] + w[pos] + w[pos + 2 :]
    elif kind < 0.7:
        w = w[:pos] + w[pos + 1 :]
    else:
        w = w[:pos] + w[pos] + w[pos:]
    words[wi] = w
    return " ".join(words)


def _noisy_query(rng: random.Random, text: str) -> str:
    """A phrasing as people type it: capitals, umlauts spelled out or dropped, typos."""
    r = rng.random()
    if r < 0.15:
        text = " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    elif r < 0.25:
        text = text[:1].upper() + text[1:]
    elif r < 0.27:
        text = text.upper()
    if any(u in text for u, _ in _UMLAUTS):
        r = rng.random()
        if r < 0.15:
            for umlaut, spelled in _UMLAUTS:
                text = text.replace(umlaut, spelled)
        elif r < 0.25:
            for umlaut, spelled in _UMLAUTS:
                text = text.replace(umlaut, spelled[0])
    if rng.random() < 0.07:
        text = _typo(rng, text)
    return text


class _User:
    """One user's history under construction: relative times in ms, events as small tuples."""

    def __init__(
        self, rng: random.Random, shop: _Shop, lang: str, channel: str, avoid: frozenset[str]
    ) -> None:
        self.rng = rng
        self.shop = shop
        self.lang = lang
        self.channel = channel
        self.home_channel = channel
        self.avoid = avoid  # categories of the user's intents: never background noise
        self.t = 0
        self.last = ""  # type of the last event
        # (ms, type, item id or query, rating)
        self.events: list[tuple[int, str, str, int]] = []
        self.channels: list[str] = []
        self.reviews: list[tuple[int, str]] = []

    # -- time ------------------------------------------------------------------------

    def pause(self, lo: float, hi: float) -> None:
        """Let lo..hi seconds pass; a long pause starts a new session (channel, noise)."""
        if not self.events:
            self.start_session()
            return
        seconds = _loguniform(self.rng, lo, hi)
        self.t += max(1000, int(seconds * 1000))
        if seconds >= SESSION_GAP:
            self.start_session()

    def step(self, kind: str) -> None:
        """The pause before an event of this kind within a session."""
        if self.events:
            lo, hi = _PAUSE.get((self.last, kind), (10.0, 120.0))
            self.t += max(1000, int(_loguniform(self.rng, lo, hi) * 1000))

    def start_session(self) -> None:
        """A new visit: maybe the other channel, maybe a glance at popular items first."""
        rng = self.rng
        if rng.random() < CHANNEL_SWITCH:
            self.channel = "web" if self.home_channel == "app" else "app"
        else:
            self.channel = self.home_channel
        if rng.random() < NOISE:
            for _ in range(rng.randint(1, 2)):
                self.emit("page_view", self.background_item())

    # -- events ----------------------------------------------------------------------

    def emit(self, kind: str, value: str, rating: int = 0) -> None:
        """Append an event after the in-session pause that fits it."""
        self.step(kind)
        self.events.append((self.t, kind, value, rating))
        self.channels.append(self.channel)
        self.last = kind

    def background_item(self) -> str:
        """A popular item outside the user's own intents (their journeys stay clean)."""
        item = self.shop.background.draw(self.rng)
        for _ in range(50):
            if item.category not in self.avoid:
                break
            item = self.shop.background.draw(self.rng)
        return item.item_id

    def query(self, pool: str, used: set[str]) -> str:
        """A search text from a pool, mostly in the user's language, unlike earlier ones."""
        rng = self.rng
        lang = self.lang
        if rng.random() < 0.1:
            lang = rng.choice(list(QUERIES[pool]))
        phrases, cum = _QUERY_WEIGHTS.get((pool, lang)) or _QUERY_WEIGHTS[(pool, "en")]
        text = phrases[0]
        for _ in range(5):
            text = rng.choices(phrases, cum_weights=cum)[0]
            if text not in used:
                break
        used.add(text)
        for name, values in PLACEHOLDERS.items():
            slot = "{" + name + "}"
            if slot in text:
                text = text.replace(
                    slot, rng.choices(values, cum_weights=_PLACEHOLDER_CUM[name])[0]
                )
        return _noisy_query(rng, text)

    # -- journeys --------------------------------------------------------------------

    def journey(self, intent: Intent) -> None:
        """Act out one intent: pick a variant, run its phases."""
        rng = self.rng
        variants = intent.variants
        phases = variants[0][1]
        if len(variants) > 1:
            phases = rng.choices([v[1] for v in variants], weights=[v[0] for v in variants])[0]
        bought = False
        for phase in phases:
            if phase.after_purchase and not bought:
                continue
            if rng.random() >= phase.chance:
                continue
            bought = self.phase(phase) or bought

    def phase(self, phase: Phase) -> bool:
        """Run one phase; True if it ended in a purchase."""
        rng = self.rng
        self.pause(*phase.gap)
        searches = rng.randint(*phase.searches) if phase.queries else 0
        views = rng.randint(*phase.views) if phase.targets else 0
        actions: list[str] = []
        cuts = sorted(rng.randint(0, views) for _ in range(max(searches, 1) - 1))
        bounds = [0, *cuts, views]
        for i in range(max(searches, 1)):
            if i < searches:
                actions.append("search")
            actions.extend(["page_view"] * (bounds[i + 1] - bounds[i]))
        if views >= 4 and rng.random() < phase.split:
            actions.insert(rng.randint(2, len(actions) - 1), "break")
        used: set[str] = set()
        seen: list[str] = []
        weights = [t.weight for t in phase.targets]
        categories = {t.category for t in phase.targets}
        hint: Target | None = None
        for action in actions:
            if action == "search" or (action == "break" and phase.queries and rng.random() < 0.5):
                if action == "break":
                    self.pause(HOUR, 2 * DAY)
                query = self.query(phase.queries, used)
                self.emit("search", query)
                hint = _hint(query, categories)
            elif action == "break":
                self.pause(HOUR, 2 * DAY)
            else:
                if len(seen) >= 2 and rng.random() < REVISIT:
                    item_id = rng.choice(seen)
                elif phase.targets[0].category == "*":
                    item_id = self.background_item()
                else:
                    target = phase.targets[0]
                    if hint is not None and rng.random() < HINT_SHARE:
                        target = hint
                    elif len(phase.targets) > 1:
                        target = rng.choices(phase.targets, weights=weights)[0]
                    pool = self.shop.pool(target)
                    item = pool.draw(rng)
                    if item.item_id in seen:
                        item = pool.draw(rng)
                    item_id = item.item_id
                seen.append(item_id)
                self.emit("page_view", item_id)
        if not seen or rng.random() >= phase.cart:
            return False
        item_id = rng.choice(seen)  # the more views, the likelier it goes to the cart
        if self.events[-1][2] != item_id:
            self.emit("page_view", item_id)
        self.emit("add_to_cart", item_id)
        if rng.random() >= phase.buy:
            return False
        if rng.random() >= SAME_SESSION_PURCHASE:
            self.pause(HOUR, 2 * DAY)
            self.emit("page_view", item_id)
        self.emit("purchase", item_id)
        if rng.random() < phase.review:
            self.reviews.append((self.t + int(_loguniform(rng, 2 * DAY, 12 * DAY) * 1000), item_id))
        return True

    def finish(self) -> list[tuple[int, str, str, int, str]]:
        """Events with reviews merged in, at least MIN_EVENTS, times from 0, strictly rising."""
        rng = self.rng
        events = [(*e, c) for e, c in zip(self.events, self.channels, strict=True)]
        for ms, item_id in self.reviews:
            item = self.shop.by_id[item_id]
            rating = round(rng.gauss(item.quality, RATINGS_SPREAD))
            events.append(
                (ms, "review", item_id, min(5, max(1, rating)), rng.choice(("web", "app")))
            )
        events.sort(key=lambda e: e[0])
        if len(events) < MIN_EVENTS:
            # A short history gets an earlier browsing session in front of it.
            t = events[0][0] - int(_loguniform(rng, HOUR, 3 * DAY) * 1000) if events else 0
            lead: list[tuple[int, str, str, int, str]] = []
            for _ in range(MIN_EVENTS - len(events) + rng.randint(0, 2)):
                lead.append((t, "page_view", self.background_item(), 0, self.home_channel))
                t -= int(_loguniform(rng, 15, 300) * 1000)
            events = lead[::-1] + events
        t0 = events[0][0]
        out: list[tuple[int, str, str, int, str]] = []
        previous = -1
        for ms, kind, value, rating, channel in events:
            ms = max(ms - t0, previous + 1)
            out.append((ms, kind, value, rating, channel))
            previous = ms
        return out


def _pick_intents(rng: random.Random) -> list[Intent]:
    """One intent (or two distinct, compatible ones) drawn by share."""
    first = INTENTS[_pick(rng, _INTENT_CUM)]
    if rng.random() >= TWO_INTENTS:
        return [first]
    others = [
        i for i in INTENTS if i is not first and frozenset({i.name, first.name}) not in EXCLUSIVE
    ]
    second = rng.choices(others, weights=[i.share for i in others])[0]
    return [first, second]


def _user_history(
    shop: _Shop, seed: int, index: int
) -> tuple[list[str], list[tuple[int, str, str, int, str]], random.Random]:
    """Intents and events (times from 0) of user number ``index``."""
    rng = random.Random(f"zmot-synthetic:{seed}:user:{index}")
    intents = _pick_intents(rng)
    lang = LANGUAGES[_pick(rng, _LANG_CUM)][0]
    channel = "app" if rng.random() < APP_SHARE else "web"
    avoid = frozenset[str]().union(*(i.categories for i in intents))
    window_ms = int(WINDOW * 1000)
    events: list[tuple[int, str, str, int, str]] = []
    for _ in range(20):
        user = _User(rng, shop, lang, channel, avoid)
        for k, intent in enumerate(intents):
            if k:
                user.pause(6 * HOUR, 5 * DAY)
            user.journey(intent)
        events = user.finish()
        if len(events) <= MAX_EVENTS and events[-1][0] <= window_ms:
            break
    else:  # pragma: no cover - practically unreachable; keep the contract anyway
        events = [e for e in events if e[0] <= window_ms][:MAX_EVENTS]
    return [i.name for i in intents], events, rng


# --------------------------------------------------------------------------------------
# Writing the files
# --------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_DAY_MS = 86_400_000


@lru_cache(maxsize=4096)
def _day(days: int) -> str:
    return f"{_EPOCH + timedelta(days=days):%Y-%m-%d}"


def _iso(ms: int) -> str:
    """ISO-8601 UTC with milliseconds and Z, e.g. 2024-05-01T12:00:00.123Z (date cached)."""
    days, rest = divmod(ms, _DAY_MS)
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{_day(days)}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def _start_ms(start: datetime | None) -> int:
    if start is None:
        start = datetime.now(UTC) - timedelta(days=28)
    elif start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return (start - _EPOCH) // timedelta(milliseconds=1)


def _write(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write JSON lines atomically (temp file, then rename); returns the number of lines."""
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False))
            handle.write("\n")
            n += 1
    os.replace(tmp, path)
    return n


def _offers(shop: _Shop, seed: int) -> list[dict[str, Any]]:
    """One offer for most items: a discount, valued at the expected margin."""
    rng = random.Random(f"zmot-synthetic:{seed}:offers")
    items = sorted(shop.items, key=lambda i: i.item_id)
    ids = rng.sample(range(10000, 100000), len(items))
    offers: list[dict[str, Any]] = []
    for item, number in zip(items, ids, strict=True):
        if rng.random() >= OFFER_SHARE:
            continue
        discount = DISCOUNTS[_pick(rng, _DISCOUNT_CUM)][0]
        offers.append(
            {
                "offer_id": f"OFF-{number}",
                "item_id": item.item_id,
                "title": f"-{discount}% on {item.title}",
                "value": round(item.price * shop.margin[item.item_id], 2),
            }
        )
    return offers


def generate(
    out_dir: Path,
    *,
    users: int = 2000,
    seed: int = 7,
    start: datetime | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Write the demo shop's four JSON-lines files to ``out_dir``; lines written per file name.

    Histories lie between ``start`` (default: 28 days ago; naive means UTC) and ``start`` + 28
    days. The bytes written are a pure function of (users, seed, start); the catalog and offers
    depend on the seed alone. Files appear whole (written aside, then renamed).
    """
    if users < 0:
        raise ConfigError(f"users must be >= 0, got {users}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = _start_ms(start)
    shop = _Shop(seed)
    width = max(5, len(str(users)))
    window_ms = int(WINDOW * 1000)

    intents_rows: list[dict[str, Any]] = []
    # (absolute ms, user number, kind, value, rating, channel, event id)
    events: list[tuple[int, int, str, str, int, str, str]] = []
    user_ids = [f"U{index + 1:0{width}d}" for index in range(users)]
    for index in tqdm(
        range(users), desc="users", unit="user", disable=not progress, file=sys.stderr
    ):
        names, history, rng = _user_history(shop, seed, index)
        intents_rows.append({"user_id": user_ids[index], "intents": names})
        offset = base + rng.randint(0, window_ms - history[-1][0])
        for ms, kind, value, rating, channel in history:
            event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            events.append((offset + ms, index, kind, value, rating, channel, event_id))
    events.sort(key=lambda e: (e[0], e[1]))

    def event_rows() -> Iterable[dict[str, Any]]:
        for ms, index, kind, value, rating, channel, event_id in events:
            row: dict[str, Any] = {
                "user_id": user_ids[index],
                "type": kind,
                "ts": _iso(ms),
            }
            if kind == "search":
                row["query"] = value
            else:
                row["item_id"] = value
            if kind == "review":
                row["rating"] = rating
            row["channel"] = channel
            row["event_id"] = event_id
            yield row

    catalog_rows = (
        {
            "item_id": i.item_id,
            "title": i.title,
            "category": i.category,
            "brand": i.brand,
            "price": i.price,
            "tags": list(i.tags),
        }
        for i in sorted(shop.items, key=lambda i: i.item_id)
    )
    return {
        "catalog.jsonl": _write(out / "catalog.jsonl", catalog_rows),
        "offers.jsonl": _write(out / "offers.jsonl", _offers(shop, seed)),
        "events.jsonl": _write(out / "events.jsonl", event_rows()),
        "intents.jsonl": _write(out / "intents.jsonl", intents_rows),
    }
