"""What an API error tells a person: the French ``message`` of each stable ``error`` code.

The portal reads ``error`` (a stable code, never translated); ``message`` is for people, in
French like the pages and the mails, or in English when the call says ``Accept-Language: en``
(for an operator's script). ``CODES`` is the list docs/openapi.json and docs/web.md give.
"""

from __future__ import annotations

from typing import Literal

Language = Literal["fr", "en"]

# code -> (French, English)
CODES: dict[str, tuple[str, str]] = {
    "invalid_request": ("La requête n'est pas valide : voir « fields ».", "The request is not valid: see fields."),
    "body_not_allowed": ("Une requête GET, HEAD ou OPTIONS ne porte pas de corps.",
                         "A GET, HEAD or OPTIONS request carries no body."),
    "comment_required": ("Le motif du refus est obligatoire : il est communiqué au demandeur.",
                         "A refusal needs a comment: it is sent to the requester."),
    "comment_too_long": ("Le motif du refus ne peut dépasser 2 000 caractères.",
                         "The comment is limited to 2,000 characters."),
    "missing_credentials": ("En-têtes d'authentification manquants (X-Syncd-Client, X-Syncd-Timestamp, "
                            "X-Syncd-Nonce, X-Syncd-Signature).", "Missing authentication header(s)."),
    "bad_timestamp": ("X-Syncd-Timestamp doit être une heure Unix en secondes.",
                      "X-Syncd-Timestamp must be Unix time in whole seconds."),
    "stale_timestamp": ("X-Syncd-Timestamp est trop éloigné de l'horloge du serveur.",
                        "X-Syncd-Timestamp is too far from the server's clock."),
    "bad_nonce": ("X-Syncd-Nonce doit compter 16 à 128 caractères parmi A-Z, a-z, 0-9, « _ » et « - ».",
                  "X-Syncd-Nonce must be 16 to 128 characters of A-Z, a-z, 0-9, '_' or '-'."),
    "bad_signature": ("La signature ne correspond pas (ou le client est inconnu).",
                      "The signature does not match (or the client is unknown)."),
    "replayed_nonce": ("Ce nonce a déjà servi : signez chaque requête à nouveau.",
                       "This nonce was used already: sign each request anew."),
    "unauthenticated": ("Requête non authentifiée.", "The request is not authenticated."),
    "own_request": ("Nul ne peut décider de sa propre demande.", "Nobody decides their own request."),
    "not_authorised": ("Ce gestionnaire n'est pas habilité à décider de cette demande.",
                       "This decider may not decide this request."),
    "forbidden": ("Accès refusé.", "Forbidden."),
    "not_found": ("Introuvable : aucune demande, aucun compte ou aucun gestionnaire de ce nom.",
                  "Not found: no such request, account or decider."),
    "method_not_allowed": ("Méthode non permise sur cette adresse.", "Method not allowed on this path."),
    "already_decided": ("Cette demande a déjà été traitée.", "This request was decided already."),
    "already_tacitly_accepted": ("Cette demande a été acceptée tacitement.",
                                 "This request was accepted tacitly."),
    "rejected": ("Cette demande a été rejetée : elle ne peut pas être décidée.",
                 "This request was rejected: it cannot be decided."),
    "not_routed": ("Cette demande est en cours de prise en compte : réessayez dans quelques minutes.",
                   "This request is not routed yet: try again in a few minutes."),
    "deadline_passed": ("Le délai de réponse est écoulé.", "The deadline has passed."),
    "idempotency_key_in_use": ("Une requête avec cet Idempotency-Key est en cours de traitement.",
                               "A request with this Idempotency-Key is still being processed."),
    "idempotency_key_reused": ("Cet Idempotency-Key a déjà servi pour une autre requête.",
                               "This Idempotency-Key was used with another request body."),
    "portal_ref_conflict": ("Ce portal_ref désigne déjà une autre demande (un champ diffère).",
                            "This portal_ref names another request (a field differs)."),
    "conflict": ("La demande n'a pas pu être enregistrée.", "The request could not be stored."),
    "body_too_large": ("Le corps de la requête est trop volumineux.", "The body is too large."),
    "unsupported_media_type": ("Type de contenu non pris en charge.", "Unsupported media type."),
    "rate_limited": ("Trop de requêtes : ralentissez.", "Too many requests: slow down."),
    "unavailable": ("La base de données est indisponible : réessayez dans quelques instants.",
                    "The database is unavailable: try again shortly."),
    "not_editable": ("Ce champ ne peut pas être modifié ici : voir « fields ».",
                     "This field cannot be changed here: see fields."),
    "stale_version": ("Le profil a changé depuis son affichage : rechargez-le puis recommencez.",
                      "The profile changed since it was read: read it again, then retry."),
    "if_match_required": ("L'en-tête If-Match (la version du profil lue) est obligatoire.",
                          "The If-Match header (the version of the profile read) is required."),
    "http_error": ("La requête ne peut pas être servie.", "The request cannot be served."),
}

# pydantic's error types -> the French message of a field (others keep pydantic's English text).
FIELD_MESSAGES_FR = {
    "missing": "Champ obligatoire.",
    "extra_forbidden": "Champ inconnu.",
    "string_type": "Une chaîne de caractères est attendue.",
    "string_unicode": "Texte illisible (caractère impossible à encoder).",
    "string_too_short": "Valeur trop courte.",
    "string_too_long": "Valeur trop longue.",
    "string_pattern_mismatch": "Format non valide.",
    "literal_error": "Valeur non permise.",
    "int_parsing": "Un nombre entier est attendu.",
    "int_type": "Un nombre entier est attendu.",
    "greater_than_equal": "Valeur trop petite.",
    "less_than_equal": "Valeur trop grande.",
    "bool_type": "true ou false est attendu.",
    "bool_parsing": "true ou false est attendu.",
    "json_invalid": "JSON non valide.",
    "model_attributes_type": "Un objet JSON est attendu.",
    "dict_type": "Un objet JSON est attendu.",
    "union_tag_invalid": "Valeur non permise.",
    "union_tag_not_found": "Champ obligatoire.",
    "datetime_parsing": "Date et heure non valides (ISO 8601 avec fuseau attendu).",
    "datetime_type": "Date et heure non valides (ISO 8601 avec fuseau attendu).",
    "timezone_aware": "Le fuseau horaire est obligatoire.",
    "value_error": "Valeur non valide.",
}
CONTROL_CHARACTER = ("Caractère non autorisé (U+{:04X}) : caractère de contrôle, de direction d'écriture ou "
                     "impossible à encoder.", "Character not allowed (U+{:04X}): a control, bidirectional "
                                              "or unencodable character.")


def language(accept_language: str | None) -> Language:
    """``en`` when the caller prefers English to French (``Accept-Language``), else ``fr``."""
    best: tuple[float, Language] = (0.0, "fr")
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().split("-")[0].lower()
        if primary not in ("fr", "en"):
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best[0]:
            best = (q, primary)   # type: ignore[assignment]
    return best[1]


def message(code: str, lang: Language, english: str | None = None) -> str:
    """The message of ``code``: French, or English (``english`` when the caller has a more precise one)."""
    fr, en = CODES.get(code, CODES["http_error"])
    return fr if lang == "fr" else (english or en)


def field_message(error_type: str, value: object, lang: Language, english: str) -> str:
    """The message of one field error: a forbidden character is named in either language."""
    from syncd.web.schemas import forbidden_character
    if isinstance(value, str) and error_type in ("string_pattern_mismatch", "string_unicode"):
        bad = forbidden_character(value, multi_line=True) or forbidden_character(value)
        if bad is not None:
            return CONTROL_CHARACTER[0 if lang == "fr" else 1].format(ord(bad))
    if lang == "en":
        return english
    return FIELD_MESSAGES_FR.get(error_type, english)
