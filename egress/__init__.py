"""SPE egress review service: disclosure checks, review workflow, DP gateway, web pages.

May import `hub` (registry, audit); `hub` never imports this package.
"""
