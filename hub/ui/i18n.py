"""The language of a page and SPE's message catalogue: English and French (pure).

English text is the message id, as in gettext: a message missing from a catalogue shows in
English rather than not at all, and tests/unit/test_ui_i18n.py fails for any `_("…")` of a
template or frame text that has no French entry. The language comes from the person's choice
(the `spe_lang` cookie, set by the switch in the header) or else the browser's Accept-Language;
English when neither names a language SPE speaks. Must not import `egress`.
"""

from __future__ import annotations

from typing import Callable

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}
COOKIE = "spe_lang"
MAX_ACCEPT_LANGUAGE_CHARS = 500

FR = {
    # the frame
    "Skip to main content": "Aller au contenu principal",
    "Main navigation": "Navigation principale",
    "Language": "Langue",
    "Home": "Accueil",
    "My outputs": "Mes sorties",
    "Imports": "Importations",
    "Output checking": "Contrôle des sorties",
    "Import checking": "Contrôle des importations",
    "Audit trail": "Journal d'audit",
    "Applications": "Demandes",
    "Hub administration": "Administration du hub",
    "Catalogue": "Catalogue",
    "Public register": "Registre public",
    "Register as JSON": "Registre en JSON",
    "Sign in": "Se connecter",
    "Sign out": "Se déconnecter",
    "no SPE role": "aucun rôle SPE",
    "SPE, a secure processing environment for health data (EHDS).":
        "SPE, un environnement de traitement sécurisé pour les données de santé (EHDS).",
    # roles
    "researcher": "chercheur·e",
    "output checker": "contrôleur·e des sorties",
    "auditor": "auditeur·rice",
    "operator": "opérateur·rice",
    "applicant": "demandeur·e",
    "HDAB assessor": "évaluateur·rice de l'organisme d'accès (HDAB)",
    "HDAB decider": "décideur·e de l'organisme d'accès (HDAB)",
    "data holder": "détenteur·rice de données",
    "citizen": "citoyen·ne",
    "My health data": "Mes données de santé",
    # role home pages and the pages around them
    "Welcome, {name}": "Bienvenue, {name}",
    "You work here as: {roles}.": "Vous travaillez ici en tant que : {roles}.",
    "You have no SPE role yet: ask an operator to add you to a group.":
        "Vous n'avez pas encore de rôle SPE : demandez à un·e opérateur·rice de vous ajouter à un groupe.",
    "Your data permits": "Vos autorisations de traitement",
    "Each permit has its own workspace. It sees only that permit's extract (read-only, at /data); results leave only through output checking.":
        "Chaque autorisation a son propre espace de travail. Il ne voit que l'extraction de cette autorisation "
        "(en lecture seule, dans /data) ; les résultats ne sortent qu'après contrôle des sorties.",
    "Permit": "Autorisation",
    "Permits": "Autorisations",
    "Title": "Titre",
    "Valid until": "Valable jusqu'au",
    "Valid": "Validité",
    "Workspace": "Espace de travail",
    "Open workspace": "Ouvrir l'espace de travail",
    "Start workspace": "Démarrer l'espace de travail",
    "Stop": "Arrêter",
    "Restart": "Redémarrer",
    "You are not a member of any active data permit.": "Vous n'êtes membre d'aucune autorisation active.",
    "Permits on this platform": "Autorisations sur cette plateforme",
    "Status": "Statut",
    "No permits yet.": "Aucune autorisation pour l'instant.",
    "Your work": "Votre travail",
    "Your output requests, their checks and states, and the files released to you.":
        "Vos demandes de sortie, leurs contrôles et états, et les fichiers qui vous ont été remis.",
    "Output requests waiting for your review or release.": "Demandes de sortie en attente de votre examen ou de votre remise.",
    "Files and packages researchers asked to bring into their workspaces.":
        "Fichiers et paquets que les chercheur·es demandent à faire entrer dans leurs espaces de travail.",
    "Every event of the platform, by permit, person, action and time; each permit's timeline.":
        "Chaque événement de la plateforme, par autorisation, personne, action et date ; la chronologie de chaque autorisation.",
    "Running workspaces; stop one that must not run. Operators never open a workspace.":
        "Espaces de travail en cours ; arrêtez celui qui ne doit pas tourner. Les opérateur·rices n'ouvrent jamais un espace de travail.",
    "Data access applications and data requests you follow, with their deadlines.":
        "Les demandes d'accès et demandes de données que vous suivez, avec leurs échéances.",
    "Permits granted and outputs released (EHDS Art. 58), open to everyone.":
        "Autorisations accordées et résultats publiés (EHDS art. 58), ouverts à toutes et tous.",
    # egress
    "My output requests": "Mes demandes de sortie",
    "Go to the checker queue": "Aller à la file de contrôle",
    "Your output requests, newest first.": "Vos demandes de sortie, les plus récentes d'abord.",
    "Request": "Demande",
    "Description": "Description",
    "State": "État",
    "Next": "Suite",
    "Checks": "Contrôles",
    "Version": "Version",
    "unverified": "non vérifié",
    "No requests yet. Submit outputs from your workspace with spe.submit(...).":
        "Aucune demande pour l'instant. Soumettez des sorties depuis votre espace de travail avec spe.submit(...).",
    "You have no output requests.": "Vous n'avez aucune demande de sortie.",
    "Released files": "Fichiers remis",
    "Released outputs of your permits. Each download is recorded in the audit trail. Check the SHA-256 checksum after downloading (sha256sum FILE).":
        "Sorties remises de vos autorisations. Chaque téléchargement est inscrit au journal d'audit. "
        "Vérifiez la somme SHA-256 après le téléchargement (sha256sum FICHIER).",
    "File": "Fichier",
    "Released": "Remis le",
    "Bytes": "Octets",
    "Nothing released yet.": "Rien n'a encore été remis.",
    "Checker queue": "File de contrôle",
    "Requests you may review or release: never your own, never of a permit you are a member of. Reviews are blinded until all required reviews are in.":
        "Les demandes que vous pouvez examiner ou remettre : jamais les vôtres, jamais celles d'une autorisation "
        "dont vous êtes membre. Les avis restent masqués tant que tous les avis requis ne sont pas rendus.",
    "Filter the queue": "Filtrer la file",
    "All": "Toutes",
    "To review": "À examiner",
    "To release": "À remettre",
    "review": "examiner",
    "release": "remettre",
    "Oldest first.": "Les plus anciennes d'abord.",
    "Author": "Auteur·rice",
    "Waiting": "En attente depuis",
    "Nothing waiting for you.": "Rien ne vous attend.",
    "Not allowed": "Non autorisé",
    "Not found": "Introuvable",
    "Sign in first": "Connectez-vous d'abord",
    "Error {status}": "Erreur {status}",
    "Refused ({status})": "Refusé ({status})",
    "What you can do instead:": "Ce que vous pouvez faire à la place :",
    "Back to your home page": "Retour à votre page d'accueil",
    # auditor pages
    "Filter the events": "Filtrer les événements",
    "Person": "Personne",
    "Action (prefix, e.g. workspace)": "Action (préfixe, par ex. workspace)",
    "From (date)": "Du (date)",
    "To (date)": "Au (date)",
    "At most": "Au plus",
    "Show events": "Afficher les événements",
    "{n} event(s).": "{n} événement(s).",
    "The same as JSON": "La même chose en JSON",
    "Oldest first. Every view of this page is itself recorded.":
        "Les plus anciens d'abord. Chaque consultation de cette page est elle-même enregistrée.",
    "No events match.": "Aucun événement ne correspond.",
    "{n} row(s).": "{n} ligne(s).",
    "Bytes the permit's workspaces sent to browsers, per person and day.":
        "Octets envoyés aux navigateurs par les espaces de travail de l'autorisation, par personne et par jour.",
    "No output recorded.": "Aucune sortie enregistrée.",
    "Audit trail checkpoints": "Points de contrôle du journal d'audit",
    "The hash of the operator's audit trail at each signed checkpoint. Save this page or its JSON: if the trail is ever rewritten, these hashes no longer match it.":
        "L'empreinte du journal d'audit de l'opérateur à chaque point de contrôle signé. Enregistrez cette page ou son JSON : si le journal est un jour réécrit, ces empreintes ne lui correspondent plus.",
    "the browser verifier": "le vérificateur dans le navigateur",
    "Signed": "Signé",
    "Event": "Événement",
    "Hash": "Empreinte",
    "Key": "Clé",
    "No checkpoints yet.": "Aucun point de contrôle pour l'instant.",
    # the public register
    "Data permit register": "Registre des autorisations de traitement",
    "Permits granted for the secondary use of health data and the outputs released under them (EHDS Art. 58).":
        "Autorisations accordées pour l'utilisation secondaire des données de santé et résultats publiés "
        "au titre de celles-ci (EHDS art. 58).",
    "Generated {when}.": "Généré le {when}.",
    "Purpose": "Finalité",
    "Organisation": "Organisme",
    "Datasets": "Jeux de données",
    "Decisions on applications": "Décisions sur les demandes",
    "Decided": "Décidé le",
    "Application": "Demande",
    "Decision": "Décision",
    "Reasons": "Motifs",
    "Released outputs": "Résultats publiés",
    "Date": "Date",
    "Kind": "Type",
    "No decisions yet.": "Aucune décision pour l'instant.",
    "No released outputs yet.": "Aucun résultat publié pour l'instant.",
    # the front office
    "Front office": "Guichet",
    "Your roles: {roles}.": "Vos rôles : {roles}.",
    "Your roles: none (ask the HDAB for the applicant, assessor, decider or data-holder role).":
        "Vos rôles : aucun (demandez à l'organisme d'accès le rôle de demandeur·e, d'évaluateur·rice, "
        "de décideur·e ou de détenteur·rice de données).",
    "Overdue (EHDS Art. 68 deadline passed)": "En retard (délai de l'art. 68 EHDS dépassé)",
    "Assessor": "Évaluateur·rice",
    "Due": "Échéance",
    "Days over": "Jours de retard",
    "New application or data request": "Nouvelle demande d'accès ou de données",
    "Applicant": "Demandeur·e",
    "d": "j",
    "paused": "suspendu",
    "No applications.": "Aucune demande.",
    "Catalogue entries you maintain": "Entrées du catalogue que vous tenez à jour",
    "edit": "modifier",
    "Back to the catalogue": "Retour au catalogue",
    "Your front office": "Votre guichet",
}

CATALOGUES = {"en": {}, "fr": FR}


def negotiate(accept_language: str | None, cookie: str | None) -> str:
    """The page language: the cookie's choice if SPE speaks it, else the browser's first
    language SPE speaks (by q-value, then order), else English."""
    if cookie in LANGUAGES:
        return cookie
    ranked = []
    for i, part in enumerate((accept_language or "")[:MAX_ACCEPT_LANGUAGE_CHARS].split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            ranked.append((-q, i, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def translator(lang: str) -> Callable[..., str]:
    """`t(message, **values)`: the message in `lang` (English when missing), `{name}` filled from values."""
    catalogue = CATALOGUES.get(lang, {})

    def t(message: str, **values) -> str:
        text = catalogue.get(message, message)
        return text.format(**values) if values else text

    return t
