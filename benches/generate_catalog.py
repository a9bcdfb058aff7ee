#!/usr/bin/env python3
"""Deterministic generator of a synthetic DCAT-AP 3 catalogue for agora's benchmarks.

Writes N datasets as NDJSON: one JSON-LD `dcat:Dataset` document per line, in the form
`POST /api/datasets` and `POST /api/datasets/batch` accept (the node's shapes: DCAT-AP 3,
plus HealthDCAT-AP for theme HEAL and mobilityDCAT-AP for theme TRAN).

Every dataset is a pure function of (seed, index): `dataset(seed, i)` gives the same document
for the same pair, whatever else was generated, so a run can be reproduced or resumed and a
slice regenerated.

What varies, and how (so that search and SPARQL have something real to find):
- 13 EU data themes (theme-specific vocabulary drives titles, descriptions and keywords);
- 300 publishers with a Zipf-like popularity (a few publish a lot, most a little), each with a
  fixed name, type, country and home page;
- titles and descriptions built from English domain words, places, measures and years;
- 3 to 7 keywords; 1 to 3 distributions with EU file types and licences;
- 1 or 2 languages, 1 to 3 countries, temporal coverage with a start date and (mostly) an end.

Usage:
    python3 benches/generate_catalog.py --count 100000 --seed 42 > catalog.ndjson
    python3 benches/generate_catalog.py --count 1 --start 17 --pretty   # one document, readable
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

EU = "http://publications.europa.eu/resource/authority/"
BASE = "https://bench.example"

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "cv": "http://data.europa.eu/m8g/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "dcatap": "http://data.europa.eu/r5r/",
    "healthdcatap": "http://healthdataportal.eu/ns/health#",
    "mobilitydcatap": "http://w3id.org/mobilitydcat-ap#",
    "eu": EU,
}

# The 13 EU data themes (OP_DATPRO, "provisional data", is left out on purpose).
THEMES = ["AGRI", "ECON", "EDUC", "ENER", "ENVI", "GOVE", "HEAL", "INTR", "JUST", "REGI",
          "SOCI", "TECH", "TRAN"]

# Per theme: subject words (nouns and noun phrases) that titles, descriptions and keywords use.
TOPICS = {
    "AGRI": ["crop yield", "wheat", "maize", "barley", "livestock", "dairy", "soil moisture",
             "irrigation", "fertiliser use", "organic farming", "vineyard", "orchard", "harvest",
             "pesticide residues", "farm income", "cattle", "poultry", "fisheries", "aquaculture",
             "forestry", "land parcels", "agricultural holdings", "grassland", "beekeeping"],
    "ECON": ["gross domestic product", "inflation", "consumer prices", "unemployment",
             "business registrations", "exports", "imports", "trade balance", "public debt",
             "household income", "retail sales", "industrial production", "wages",
             "tourism nights", "bankruptcies", "investment", "tax revenue", "procurement",
             "start-ups", "labour market", "productivity", "exchange rates"],
    "EDUC": ["school enrolment", "pupils", "teachers", "graduates", "university admissions",
             "exam results", "vocational training", "early school leaving", "literacy",
             "adult learning", "student mobility", "school buildings", "class sizes",
             "libraries", "museum visits", "cultural heritage", "sports facilities",
             "language courses", "scholarships", "digital skills"],
    "ENER": ["electricity consumption", "renewable energy", "solar power", "wind farms",
             "gas consumption", "energy prices", "district heating", "heat pumps",
             "charging stations", "power plants", "grid load", "energy efficiency",
             "hydropower", "biomass", "oil imports", "nuclear generation", "smart meters",
             "building energy performance", "hydrogen", "battery storage"],
    "ENVI": ["air quality", "nitrogen dioxide", "particulate matter", "ozone", "river levels",
             "groundwater", "water quality", "biodiversity", "protected areas", "bird counts",
             "noise", "waste collection", "recycling", "greenhouse gas emissions",
             "land cover", "forest fires", "flood risk", "drought", "coastal erosion",
             "temperature", "precipitation", "snow cover", "invasive species", "soil sealing"],
    "GOVE": ["public spending", "municipal budget", "elections", "election results",
             "council decisions", "civil servants", "public procurement", "open government",
             "freedom of information requests", "lobbying register", "subsidies",
             "administrative boundaries", "population register", "public services",
             "e-government usage", "grants", "official statistics", "parliament votes"],
    "HEAL": ["hospital admissions", "diabetes", "cardiovascular disease", "cancer incidence",
             "vaccination coverage", "emergency visits", "mortality", "life expectancy",
             "prescriptions", "primary care", "mental health", "waiting times",
             "intensive care beds", "infectious diseases", "influenza", "obesity",
             "maternal health", "rare diseases", "antimicrobial resistance", "patient records"],
    "INTR": ["development aid", "humanitarian assistance", "foreign trade", "embassies",
             "international agreements", "migration flows", "asylum applications",
             "sanctions", "cross-border cooperation", "twinning partnerships",
             "international students", "visa applications", "peacekeeping"],
    "JUST": ["court cases", "crime statistics", "burglaries", "road traffic offences",
             "prison population", "legal aid", "police stations", "court decisions",
             "victims of crime", "cybercrime", "fraud", "juvenile justice", "public safety",
             "fire brigade interventions", "emergency calls"],
    "REGI": ["building permits", "housing prices", "rents", "land use plans", "addresses",
             "cadastral parcels", "urban green spaces", "population density", "census",
             "municipalities", "regional development", "street names", "zoning",
             "public housing", "vacant buildings", "city districts"],
    "SOCI": ["population", "births", "deaths", "marriages", "households", "poverty",
             "social benefits", "pensions", "elderly care", "childcare places",
             "disability", "homelessness", "volunteering", "gender equality", "youth",
             "ageing", "integration of migrants", "time use", "living conditions"],
    "TECH": ["broadband coverage", "mobile networks", "5G", "research projects", "patents",
             "innovation", "open source software", "internet use", "cybersecurity incidents",
             "satellite imagery", "artificial intelligence", "high-performance computing",
             "data centres", "digital public services", "research funding", "spectrum"],
    "TRAN": ["public transport", "bus stops", "timetables", "traffic counts", "road accidents",
             "cycling", "bike sharing", "parking", "railway stations", "train punctuality",
             "air passengers", "ports", "freight", "car registrations", "e-scooters",
             "congestion", "road works", "electric vehicles", "pedestrian flows", "ferries"],
}

MEASURES = ["Monthly statistics", "Daily measurements", "Annual survey", "Hourly observations",
            "Register", "Inventory", "Time series", "Indicators", "Census", "Monitoring network",
            "Open data", "Quarterly report", "Map", "Forecasts", "Sample survey", "Index",
            "Administrative records", "Real-time feed", "Historical archive", "Estimates"]

PLACES = [("Berlin", "DEU"), ("Hamburg", "DEU"), ("Munich", "DEU"), ("Bavaria", "DEU"),
          ("Saxony", "DEU"), ("Paris", "FRA"), ("Lyon", "FRA"), ("Marseille", "FRA"),
          ("Brittany", "FRA"), ("Occitanie", "FRA"), ("Madrid", "ESP"), ("Barcelona", "ESP"),
          ("Andalusia", "ESP"), ("Valencia", "ESP"), ("Rome", "ITA"), ("Milan", "ITA"),
          ("Lombardy", "ITA"), ("Tuscany", "ITA"), ("Naples", "ITA"), ("Amsterdam", "NLD"),
          ("Rotterdam", "NLD"), ("Utrecht", "NLD"), ("Brussels", "BEL"), ("Flanders", "BEL"),
          ("Wallonia", "BEL"), ("Vienna", "AUT"), ("Tyrol", "AUT"), ("Warsaw", "POL"),
          ("Krakow", "POL"), ("Gdansk", "POL"), ("Prague", "CZE"), ("Brno", "CZE"),
          ("Budapest", "HUN"), ("Lisbon", "PRT"), ("Porto", "PRT"), ("Dublin", "IRL"),
          ("Cork", "IRL"), ("Copenhagen", "DNK"), ("Aarhus", "DNK"), ("Stockholm", "SWE"),
          ("Gothenburg", "SWE"), ("Helsinki", "FIN"), ("Tampere", "FIN"), ("Tallinn", "EST"),
          ("Riga", "LVA"), ("Vilnius", "LTU"), ("Bratislava", "SVK"), ("Ljubljana", "SVN"),
          ("Zagreb", "HRV"), ("Bucharest", "ROU"), ("Cluj-Napoca", "ROU"), ("Sofia", "BGR"),
          ("Athens", "GRC"), ("Thessaloniki", "GRC"), ("Nicosia", "CYP"), ("Valletta", "MLT"),
          ("Luxembourg", "LUX")]

COUNTRY_LANGUAGE = {"DEU": "DEU", "AUT": "DEU", "FRA": "FRA", "BEL": "NLD", "LUX": "FRA",
                    "ESP": "SPA", "ITA": "ITA", "NLD": "NLD", "POL": "POL", "CZE": "CES",
                    "HUN": "HUN", "PRT": "POR", "IRL": "ENG", "DNK": "DAN", "SWE": "SWE",
                    "FIN": "FIN", "EST": "EST", "LVA": "LAV", "LTU": "LIT", "SVK": "SLK",
                    "SVN": "SLV", "HRV": "HRV", "ROU": "RON", "BGR": "BUL", "GRC": "ELL",
                    "CYP": "ELL", "MLT": "MLT"}

QUALIFIERS = ["by municipality", "by district", "by age group", "by sex", "by sector",
              "by region", "per station", "per school", "per hospital", "per line",
              "at national level", "for urban areas", "for rural areas", "in border regions",
              "by income group", "by nationality", "by type", "by month"]

SENTENCES = [
    "The data are collected by {publisher} and published as open data.",
    "Values are aggregated {qualifier} and validated before release.",
    "This dataset covers {place} from {start} to {end}.",
    "It supports research on {topic2} and {topic3}.",
    "Methodology and quality notes follow the European statistical guidelines.",
    "Missing values are flagged; revisions are published with each update.",
    "The series is comparable across years since a methodological break in {start}.",
    "Coordinates use the ETRS89 reference system where locations are given.",
    "Records are anonymised and small counts are suppressed to protect privacy.",
    "Updated {frequency_word}, the dataset is used by planners, journalists and researchers.",
    "Derived indicators combine {topic2} with population figures for {place}.",
    "An earlier version of this dataset was part of the {place} open data portal.",
]

GENERIC_KEYWORDS = ["open data", "statistics", "time series", "monitoring", "indicators",
                    "Europe", "regional", "municipal", "annual", "survey", "register",
                    "geospatial", "real-time", "historical", "public sector"]

FORMATS = ["CSV", "JSON", "PARQUET", "GEOJSON", "TSV", "JSON_LD", "RDF_TURTLE", "ZIP",
           "ARROW_STREAM", "RDF_XML", "RDF_N_TRIPLES", "ARROW_FILE"]
FORMAT_WEIGHTS = [30, 18, 12, 8, 5, 5, 4, 6, 3, 3, 3, 3]
LICENCES = ["CC_BY_4_0", "CC0", "CC_BYSA_4_0", "CC_BYNC_4_0", "CC_BYND_4_0", "CC_BYNCSA_4_0",
            "CC_BYNCND_4_0", "ODC_BL", "ODC_PDDL"]
LICENCE_WEIGHTS = [40, 25, 10, 6, 4, 3, 2, 6, 4]
FREQUENCIES = ["DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "ANNUAL", "IRREG", "CONT",
               "UPDATE_CONT", "HOURLY", "NEVER"]
FREQUENCY_WORD = {"DAILY": "daily", "WEEKLY": "weekly", "MONTHLY": "monthly",
                  "QUARTERLY": "every quarter", "ANNUAL": "once a year",
                  "IRREG": "irregularly", "CONT": "continuously", "UPDATE_CONT": "continuously",
                  "HOURLY": "every hour", "NEVER": "no longer"}
PUBLISHER_TYPES = ["NationalAuthority", "RegionalAuthority", "LocalAuthority", "Company",
                   "NonProfitOrganisation", "NonGovernmentalOrganisation",
                   "SupraNationalAuthority", "IndustryConsortium", "StandardisationBody"]
ORG_PATTERNS = [
    ("{place} Statistics Office", "RegionalAuthority"),
    ("City of {place}", "LocalAuthority"),
    ("{place} Environment Agency", "RegionalAuthority"),
    ("{place} Transport Authority", "LocalAuthority"),
    ("{place} Health Observatory", "NonProfitOrganisation"),
    ("University of {place}", "NonProfitOrganisation"),
    ("{place} Chamber of Commerce", "IndustryConsortium"),
    ("{place} Energy Utility", "Company"),
    ("{place} Water Board", "LocalAuthority"),
    ("{place} Institute for Research", "NonProfitOrganisation"),
    ("{place} Ministry of Interior", "NationalAuthority"),
    ("{place} Land Registry", "NationalAuthority"),
    ("{place} Citizens' Data Collective", "NonGovernmentalOrganisation"),
]
N_PUBLISHERS = 300

MOBILITY_THEMES = ["public-transport-scheduled-transport", "traffic-data", "parking",
                   "road-network", "other"]
MOBILITY_STANDARDS = ["gtfs", "netex", "datex-II", "siri", "other"]
HEALTH_CATEGORIES = ["EHRS", "HRAD", "PHDR", "RQSH"]
TRANSPORT_MODES = ["bus", "tram-light-rail", "bicycle", "car", "e-scooter", "pedestrian",
                   "long-distance-rail", "ferry"]
NETWORK_COVERAGE = ["urban-and-local-roads", "metro-subway-tram-or-light-rail-network",
                    "long-distance-rail-network", "motorways"]
CONDITIONS = ["free-of-charge", "contractual-arrangement-free-of-charge", "licence-provided"]


def publishers() -> list[dict]:
    """The fixed list of publishers (same for every seed: they are the world, not the sample)."""
    rng = random.Random(7)
    result = []
    seen = set()
    while len(result) < N_PUBLISHERS:
        place, country = rng.choice(PLACES)
        pattern, kind = rng.choice(ORG_PATTERNS)
        name = pattern.format(place=place)
        if name in seen:
            continue
        seen.add(name)
        slug = name.lower().replace("'", "").replace(" ", "-")
        n = len(result)
        result.append({"n": n, "name": name, "type": kind, "country": country, "place": place,
                       "iri": f"{BASE}/publishers/{n}", "home": f"https://{slug}.example/"})
    return result


PUBLISHERS = publishers()
# Zipf-like popularity: publisher k gets weight 1/(k+1)^0.8.
PUBLISHER_WEIGHTS = [1.0 / (k + 1) ** 0.8 for k in range(N_PUBLISHERS)]
THEME_WEIGHTS = [8, 10, 6, 8, 14, 9, 9, 4, 5, 8, 8, 6, 5]


def lit(value: str, lang: str = "en") -> dict:
    return {"@value": value, "@language": lang}


def date(value: str) -> dict:
    return {"@value": value, "@type": "xsd:date"}


def publisher_node(p: dict) -> dict:
    # cv:contactPoint on every publisher: HealthDCAT-AP requires it on a health dataset's
    # publisher, and a publisher is described the same way in every dataset it publishes.
    return {
        "@id": p["iri"],
        "@type": "foaf:Agent",
        "foaf:name": lit(p["name"]),
        "dct:type": {"@id": f"http://purl.org/adms/publishertype/{p['type']}"},
        "foaf:homepage": {"@id": p["home"]},
        "cv:contactPoint": {
            "@type": "cv:ContactPoint",
            "cv:email": f"data@{p['home'][8:-1]}",
        },
    }


def dataset(seed: int, i: int) -> dict:
    """Dataset number `i` of the catalogue generated with `seed`."""
    rng = random.Random(seed * 1_000_003 + i)
    theme = rng.choices(THEMES, weights=THEME_WEIGHTS)[0]
    pub = rng.choices(PUBLISHERS, weights=PUBLISHER_WEIGHTS)[0]
    topics = rng.sample(TOPICS[theme], 3)
    # Mostly the publisher's place, sometimes elsewhere.
    if rng.random() < 0.7:
        place, country = pub["place"], pub["country"]
    else:
        place, country = rng.choice(PLACES)
    start_year = rng.randint(1995, 2024)
    end_year = min(2025, start_year + rng.choice([0, 0, 1, 2, 4, 9, 14, 29]))
    open_ended = rng.random() < 0.2
    frequency = rng.choice(FREQUENCIES)
    measure = rng.choice(MEASURES)
    qualifier = rng.choice(QUALIFIERS)
    if rng.random() < 0.5:
        title = f"{measure}: {topics[0]} {qualifier}, {place}"
    else:
        title = f"{topics[0].capitalize()} in {place}, {start_year}" + ("-today" if open_ended else (f"-{end_year}" if end_year != start_year else ""))
    title = title[0].upper() + title[1:]
    context = {"publisher": pub["name"], "qualifier": qualifier, "place": place,
               "start": start_year, "end": end_year if not open_ended else "today",
               "topic2": topics[1], "topic3": topics[2], "frequency_word": FREQUENCY_WORD[frequency]}
    if open_ended:
        span = f"{start_year} onwards"
    elif end_year == start_year:
        span = str(start_year)
    else:
        span = f"{start_year}-{end_year}"
    first = f"{measure} of {topics[0]} {qualifier} in {place} ({span})."
    sentences = [first] + [s.format(**context) for s in rng.sample(SENTENCES, rng.randint(2, 4))]
    keywords = list(dict.fromkeys(
        [topics[0], topics[1]] + rng.sample(TOPICS[theme], rng.randint(0, 2))
        + rng.sample(GENERIC_KEYWORDS, rng.randint(1, 3)) + [place]))
    countries = [country] + [c for _, c in rng.sample(PLACES, rng.choice([0, 0, 0, 1, 2]))]
    countries = list(dict.fromkeys(countries))
    languages = list(dict.fromkeys(
        ["ENG"] + ([COUNTRY_LANGUAGE.get(country, "ENG")] if rng.random() < 0.6 else [])))
    iri = f"{BASE}/datasets/{i}"
    temporal = {"@type": "dct:PeriodOfTime", "dcat:startDate": date(f"{start_year}-01-01")}
    if not open_ended:
        temporal["dcat:endDate"] = date(f"{end_year}-12-31")
    health = theme == "HEAL"
    mobility = theme == "TRAN"
    access = "PUBLIC"
    if health:
        access = rng.choice(["NON_PUBLIC", "NON_PUBLIC", "RESTRICTED", "PUBLIC"])
    elif rng.random() < 0.05:
        access = "RESTRICTED"

    distributions = []
    for k in range(rng.choices([1, 2, 3], weights=[50, 35, 15])[0]):
        fmt = rng.choices(FORMATS, weights=FORMAT_WEIGHTS)[0]
        distribution = {
            "@id": f"{iri}/distribution/{k}",
            "@type": "dcat:Distribution",
            "dct:title": lit(f"{topics[0].capitalize()} ({fmt.replace('_', ' ').lower()})"),
            "dct:description": lit(f"{measure} of {topics[0]} {qualifier} as "
                                   f"{fmt.replace('_', ' ')}, one file per year."),
            "dcat:accessURL": {"@id": f"{pub['home']}data/{i}/{k}"},
            "dct:format": {"@id": f"eu:file-type/{fmt}"},
            "dct:license": {"@id": f"eu:licence/{rng.choices(LICENCES, weights=LICENCE_WEIGHTS)[0]}"},
            "dcatap:availability": {"@id": "eu:planned-availability/STABLE"},
        }
        if rng.random() < 0.5:
            distribution["dcat:byteSize"] = {"@value": str(rng.randint(10_000, 5_000_000_000)),
                                             "@type": "xsd:nonNegativeInteger"}
        if health:
            distribution["dcatap:applicableLegislation"] = {"@id": "http://data.europa.eu/eli/reg/2025/327/oj"}
        if mobility:
            distribution["mobilitydcatap:mobilityDataStandard"] = {
                "@id": f"https://w3id.org/mobilitydcat-ap/mobility-data-standard/{rng.choice(MOBILITY_STANDARDS)}"}
            distribution["dct:rights"] = {
                "@type": "dct:RightsStatement",
                "dct:type": {"@id": f"https://w3id.org/mobilitydcat-ap/conditions-for-access-and-usage/{rng.choice(CONDITIONS)}"}}
        distributions.append(distribution)

    doc = {
        "@context": CONTEXT,
        "@id": iri,
        "@type": "dcat:Dataset",
        "dct:identifier": f"bench-{i}",
        "dct:title": lit(title),
        "dct:description": lit(" ".join(sentences)),
        "dcat:theme": {"@id": f"eu:data-theme/{theme}"},
        "dcat:keyword": [lit(k) for k in keywords],
        "dct:publisher": publisher_node(pub),
        "dcat:contactPoint": {
            "@type": "vcard:Kind",
            "vcard:fn": f"Data desk, {pub['name']}",
            "vcard:hasEmail": {"@id": f"mailto:data@{pub['home'][8:-1]}"},
        },
        "dct:accessRights": {"@id": f"eu:access-right/{access}"},
        "dct:accrualPeriodicity": {"@id": f"eu:frequency/{frequency}"},
        "dct:language": [{"@id": f"eu:language/{lang}"} for lang in languages],
        "dct:spatial": [{"@id": f"eu:country/{c}"} for c in countries],
        "dct:temporal": temporal,
        "dct:issued": date(f"{min(2025, end_year)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"),
        "dcat:distribution": distributions if len(distributions) > 1 else distributions[0],
    }
    if health:
        doc["dct:type"] = {"@id": "eu:dataset-type/STATISTICAL"}
        doc["dcatap:applicableLegislation"] = [{"@id": "http://data.europa.eu/eli/reg/2025/327/oj"},
                                               {"@id": "http://data.europa.eu/eli/reg/2016/679/oj"}]
        doc["healthdcatap:hdab"] = {
            "@id": f"{BASE}/hdab/{country}",
            "@type": "foaf:Agent",
            "foaf:name": lit(f"Health Data Access Body ({country})"),
            "dct:type": {"@id": "http://purl.org/adms/publishertype/NationalAuthority"},
            "cv:contactPoint": {"@type": "cv:ContactPoint",
                                "cv:email": f"permits@hdab-{country.lower()}.example"},
        }
        doc["healthdcatap:healthCategory"] = {
            "@id": f"https://hdeu-dcat.data.health.europa.eu/resource/authority/healthcategories/{rng.choice(HEALTH_CATEGORIES)}"}
        doc["healthdcatap:hasStructuredData"] = {"@value": "false", "@type": "xsd:boolean"}
        doc["healthdcatap:numberOfRecords"] = {"@value": str(rng.randint(100, 5_000_000)),
                                               "@type": "xsd:nonNegativeInteger"}
        doc["dct:provenance"] = {"@type": "dct:ProvenanceStatement",
                                 "rdfs:label": lit(f"Extracted {FREQUENCY_WORD[frequency]} from the records of {pub['name']}.")}
    if mobility:
        doc["mobilitydcatap:mobilityTheme"] = {
            "@id": f"https://w3id.org/mobilitydcat-ap/mobility-theme/{rng.choice(MOBILITY_THEMES)}"}
        doc["mobilitydcatap:georeferencingMethod"] = {
            "@id": "https://w3id.org/mobilitydcat-ap/georeferencing-method/geocoordinates"}
        doc["dct:conformsTo"] = {"@id": "http://www.opengis.net/def/crs/EPSG/0/4326"}
        doc["mobilitydcatap:transportMode"] = [
            {"@id": f"https://w3id.org/mobilitydcat-ap/transport-mode/{m}"}
            for m in rng.sample(TRANSPORT_MODES, rng.randint(1, 3))]
        doc["mobilitydcatap:networkCoverage"] = {
            "@id": f"https://w3id.org/mobilitydcat-ap/network-coverage/{rng.choice(NETWORK_COVERAGE)}"}
        doc["dct:rightsHolder"] = {"@id": pub["iri"]}
    return doc


def search_words() -> list[str]:
    """Single words that occur in generated titles, descriptions and keywords (for search)."""
    words = set()
    for topics in TOPICS.values():
        for t in topics:
            words.update(w for w in t.lower().split() if len(w) > 3)
    for m in MEASURES:
        words.update(w for w in m.lower().split() if len(w) > 3)
    for place, _ in PLACES:
        words.add(place.lower())
    return sorted(words)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="datasets to write")
    parser.add_argument("--start", type=int, default=0, help="index of the first dataset")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pretty", action="store_true", help="indented JSON (not NDJSON)")
    args = parser.parse_args()
    out = sys.stdout
    for i in range(args.start, args.start + args.count):
        doc = dataset(args.seed, i)
        if args.pretty:
            out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        else:
            out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
