"""SPE's one page frame for every server-rendered page (hub, egress, front office).

`roles` turns a hub identity's scopes into SPE roles, `frame` builds the header, navigation
and footer a person sees (only what their roles allow), `i18n` holds the English and French
message catalogue and picks the language, `web` holds the tornado pieces the services share
(language switch, frame in the template namespace). Pure except `web`. Must not import `egress`.
"""
